"""The 1,797 8x8 handwritten digits that ship inside scikit-learn: a tiny, offline MNIST stand-in.

Nothing is downloaded: scikit-learn bundles the data in its wheel. It is an optional dependency,
installed with the `data` extra.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from graphc.data.dataset import Dataset, float_dtype

_INSTALL_HINT = (
    "load_digits needs scikit-learn, which ships the digits data; "
    "install the extra with: pip install 'graphc[data]'"
)


def load_digits(dtype: DTypeLike = "float64", images: bool = False) -> Dataset:
    """Load the digits as a Dataset named "digits" with 10 classes.

    `x` holds pixel/16, so values lie in [0, 1]; its shape is (1797, 64), or (1797, 1, 8, 8)
    (NCHW, one channel) with `images=True`. Raises ImportError when scikit-learn is missing.
    """
    target = float_dtype(dtype)
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    bunch = datasets.load_digits()
    x = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(target)
    if images:
        x = x.reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target).astype(np.int64)
    return Dataset(x, y, num_classes=10, name="digits")
