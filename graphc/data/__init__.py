"""Datasets for training graphc models, all offline.

`Dataset` holds features and integer labels and knows how to split and batch itself.
`load_digits` gives scikit-learn's bundled 8x8 digits (the `data` extra); `load_mnist` reads
MNIST IDX files the user already has, via `read_idx`, with `write_idx` for the reverse. Malformed
files raise `graphc.errors.DataError` naming the file and what is wrong. Nothing is downloaded.
"""

from graphc.data.dataset import Dataset
from graphc.data.digits import load_digits
from graphc.data.idx import load_mnist, read_idx, write_idx

__all__ = ["Dataset", "load_digits", "load_mnist", "read_idx", "write_idx"]
