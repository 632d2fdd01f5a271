"""The IDX file format (MNIST's), read and written without any download.

An IDX file is a 4-byte big-endian magic (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order, big-endian. Files whose content
starts with the gzip magic are decompressed transparently, whatever their name.

Every check names the file and the numbers that disagree, because a truncated or mislabelled
download is the usual cause and the message is all the user sees.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from graphc.data.dataset import Dataset, float_dtype
from graphc.errors import DataError

# type code -> (name used in messages, big-endian dtype of the stored values)
_TYPES: dict[int, tuple[str, np.dtype]] = {
    0x08: ("unsigned byte", np.dtype("u1")),
    0x09: ("signed byte", np.dtype("i1")),
    0x0B: ("int16", np.dtype(">i2")),
    0x0C: ("int32", np.dtype(">i4")),
    0x0D: ("float32", np.dtype(">f4")),
    0x0E: ("float64", np.dtype(">f8")),
}
_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_MNIST_KINDS = ("train", "t10k")


def _describe(magic: int) -> str:
    """Spell out a magic number, e.g. 0x00000803 -> 'unsigned byte, 3 dimensions'."""
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    name = _TYPES[code][0] if code in _TYPES else f"unknown type 0x{code:02X}"
    return f"{name}, {ndim} dimension{'' if ndim == 1 else 's'}"


def _load_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip data ({len(raw)} bytes compressed): {exc}") from exc


def _parse(path: Path) -> tuple[int, np.ndarray]:
    """Read and validate one IDX file; return its magic number and its array (native byte order)."""
    data = _load_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: file is {len(data)} bytes, shorter than the 4-byte IDX magic")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{path}: not an IDX file: the magic must start with two zero bytes, "
            f"found 0x{data[0]:02X} 0x{data[1]:02X}"
        )
    (magic,) = struct.unpack(">I", data[:4])
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        known = ", ".join(f"0x{c:02X} ({name})" for c, (name, _) in _TYPES.items())
        raise DataError(
            f"{path}: unknown IDX type code 0x{code:02X} in magic 0x{magic:08X}; "
            f"expected one of {known}"
        )
    if ndim == 0:
        raise DataError(f"{path}: magic 0x{magic:08X} declares zero dimensions; need at least 1")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path}: file is {len(data)} bytes, shorter than the {header}-byte header "
            f"(4-byte magic + {ndim} dimension sizes)"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    name, stored = _TYPES[code]
    expected = math.prod(dims) * stored.itemsize
    actual = len(data) - header
    if actual != expected:
        problem = "truncated" if actual < expected else f"{actual - expected} trailing bytes"
        raise DataError(
            f"{path}: {problem}: header says {'x'.join(map(str, dims))} {name} values = "
            f"{expected} bytes of data, file has {actual}"
        )
    array = np.frombuffer(data, dtype=stored, offset=header).reshape(dims)
    return magic, array.astype(stored.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a new native-byte-order array.

    Raises DataError naming the file when the header is short or malformed, the type code is
    unknown, or the data is shorter or longer than the dimensions say.
    """
    return _parse(Path(path))[1]


def write_idx(path: str | os.PathLike[str], array: ArrayLike) -> None:
    """Write `array` as an IDX file, gzip-compressed when `path` ends in `.gz`.

    Supported dtypes are uint8, int8, int16, int32, float32 and float64; the array needs at
    least one dimension. Compressed output is byte-for-byte reproducible (gzip mtime is 0).
    """
    path = Path(path)
    values = np.asarray(array)
    codes = {stored.newbyteorder("="): code for code, (_, stored) in _TYPES.items()}
    code = codes.get(values.dtype.newbyteorder("="))
    if code is None:
        supported = ", ".join(str(d) for d in codes)
        raise DataError(f"{path}: cannot write dtype {values.dtype} to IDX; supported: {supported}")
    if values.ndim == 0:
        raise DataError(f"{path}: cannot write a 0-d array to IDX; it needs at least 1 dimension")
    header = struct.pack(f">BBBB{values.ndim}I", 0, 0, code, values.ndim, *values.shape)
    payload = header + np.ascontiguousarray(values, dtype=_TYPES[code][1]).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)


def _find(directory: Path, stem: str) -> Path:
    names = [stem, f"{stem}.gz"]
    for name in names:
        if (directory / name).is_file():
            return directory / name
    missing = "" if directory.is_dir() else " (the directory does not exist)"
    raise DataError(f"{directory}: no {stem} file{missing}; looked for {', '.join(names)}")


def _expect(path: Path, magic: int, ndim: int) -> None:
    wanted = (_UBYTE << 8) | ndim
    if magic != wanted:
        raise DataError(
            f"{path}: expected magic 0x{wanted:08X} ({_describe(wanted)}), "
            f"found 0x{magic:08X} ({_describe(magic)})"
        )


def load_mnist(
    directory: str | os.PathLike[str],
    kind: str = "train",
    dtype: DTypeLike = "float64",
    images: bool = False,
) -> Dataset:
    """Load MNIST's `kind` ("train" or "t10k") split from IDX files already in `directory`.

    Reads `{kind}-images-idx3-ubyte` and `{kind}-labels-idx1-ubyte`, each optionally with a `.gz`
    suffix. Nothing is ever downloaded. `x` holds pixel/255 in [0, 1], shaped (n, rows*cols)
    (784 for MNIST) or (n, 1, rows, cols) with `images=True`; the Dataset is named "mnist-{kind}"
    with 10 classes. Raises DataError naming the file for a missing file, a wrong magic, mismatched
    counts or a label outside 0..9.
    """
    if kind not in _MNIST_KINDS:
        raise ValueError(f"kind must be one of {', '.join(_MNIST_KINDS)}; got {kind!r}")
    target = float_dtype(dtype)
    directory = Path(directory)
    images_path = _find(directory, f"{kind}-images-idx3-ubyte")
    labels_path = _find(directory, f"{kind}-labels-idx1-ubyte")
    images_magic, pixels = _parse(images_path)
    _expect(images_path, images_magic, 3)
    labels_magic, labels = _parse(labels_path)
    _expect(labels_path, labels_magic, 1)
    if pixels.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} has {pixels.shape[0]} images but {labels_path} has "
            f"{labels.shape[0]} labels"
        )
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{labels_path}: labels out of range: found label {int(labels[i])} at index {i}, "
            "expected 0..9"
        )
    x = pixels.astype(target)
    x /= 255
    n, rows, cols = pixels.shape
    x = x.reshape(n, 1, rows, cols) if images else x.reshape(n, rows * cols)
    return Dataset(x, labels.astype(np.int64), num_classes=10, name=f"mnist-{kind}")
