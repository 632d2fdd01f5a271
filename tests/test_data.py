"""Tests for graphc.data: Dataset splitting and batching, the digits loader, IDX and MNIST files."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from graphc.data import Dataset, load_digits, load_mnist, read_idx, write_idx
from graphc.errors import DataError


def make_dataset(n: int = 23, num_classes: int = 3) -> Dataset:
    """Rows whose single feature is their own index, so orders and coverage are easy to read."""
    return Dataset(np.arange(n, dtype=np.float64)[:, None], np.arange(n) % num_classes, num_classes)


# --- Dataset -------------------------------------------------------------------------------------


def test_dataset_validates_and_normalises_labels():
    ds = Dataset(np.zeros((4, 2)), np.array([0, 1, 2, 1], dtype=np.int8), 3, "toy")
    assert len(ds) == 4
    assert ds.y.dtype == np.int64
    with pytest.raises(AttributeError):
        ds.name = "other"


def test_dataset_row_count_mismatch_names_both_counts():
    with pytest.raises(DataError, match=r"'toy'.*8 rows.*7 labels"):
        Dataset(np.zeros((8, 2)), np.zeros(7, dtype=np.int64), 2, "toy")


def test_dataset_rejects_float_labels():
    with pytest.raises(DataError, match="integer class labels.*float64"):
        Dataset(np.zeros((2, 2)), np.array([0.0, 1.0]), 2, "toy")


@pytest.mark.parametrize(("label", "index"), [(12, 5), (-1, 2)])
def test_dataset_label_out_of_range_names_label_and_index(label, index):
    y = np.zeros(8, dtype=np.int64)
    y[index] = label
    y[7] = 99  # a later bad label must not be the one reported
    with pytest.raises(DataError, match=rf"found label {label} at index {index}, expected 0\.\.9"):
        Dataset(np.zeros((8, 3)), y, 10, "toy")


def test_astype_copies_and_casts():
    ds = make_dataset()
    cast = ds.astype(np.float32)
    assert cast.x.dtype == np.float32 and ds.x.dtype == np.float64
    cast.x[0, 0] = 100.0
    assert ds.x[0, 0] == 0.0
    np.testing.assert_array_equal(cast.y, ds.y)
    assert cast.name == ds.name and cast.num_classes == ds.num_classes


def test_subset_takes_rows_in_order_given():
    ds = make_dataset()
    sub = ds.subset([5, 0, 7])
    np.testing.assert_array_equal(sub.x[:, 0], [5, 0, 7])
    np.testing.assert_array_equal(sub.y, [2, 0, 1])
    assert len(ds.subset([])) == 0


def test_split_sizes_disjoint_and_complete():
    ds = make_dataset(1797, 10)
    parts = ds.split()
    assert [len(p) for p in parts] == [1078, 360, 359]
    ids = [set(p.x[:, 0].astype(int)) for p in parts]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set().union(*ids) == set(range(1797))
    for p in parts:
        np.testing.assert_array_equal(p.y, p.x[:, 0].astype(int) % 10)  # rows stay paired


def test_split_is_deterministic_by_seed():
    ds = make_dataset(100)
    a = ds.split((0.5, 0.5), seed=3)
    b = ds.split((0.5, 0.5), seed=3)
    c = ds.split((0.5, 0.5), seed=4)
    np.testing.assert_array_equal(a[0].x, b[0].x)
    assert not np.array_equal(a[0].x, c[0].x)


@pytest.mark.parametrize("fractions", [(0.5, 0.4), (0.7, 0.4, -0.1), ()])
def test_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        make_dataset().split(fractions)


@pytest.mark.parametrize("batch_size", [1, 4, 5, 23, 50])
def test_batches_cover_every_row_once(batch_size):
    ds = make_dataset()
    batches = list(ds.batches(batch_size, np.random.default_rng(0)))
    assert all(len(xb) == len(yb) <= batch_size for xb, yb in batches)
    seen = np.concatenate([xb[:, 0] for xb, _ in batches]).astype(int)
    assert sorted(seen) == list(range(len(ds)))
    labels = np.concatenate([yb for _, yb in batches])
    np.testing.assert_array_equal(labels, seen % 3)


def test_batches_drop_last_and_no_shuffle():
    ds = make_dataset()
    sizes = [len(xb) for xb, _ in ds.batches(5, shuffle=False)]
    assert sizes == [5, 5, 5, 5, 3]
    first = next(iter(ds.batches(5, shuffle=False)))[0][:, 0]
    np.testing.assert_array_equal(first, [0, 1, 2, 3, 4])
    assert [len(xb) for xb, _ in ds.batches(5, np.random.default_rng(0), drop_last=True)] == [5] * 4


def test_batches_order_is_one_permutation_from_generator_state():
    ds = make_dataset()
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    first = np.concatenate([xb[:, 0] for xb, _ in ds.batches(4, rng)])
    after_one_epoch = rng.bit_generator.state
    rng.bit_generator.state = state
    again = np.concatenate([xb[:, 0] for xb, _ in ds.batches(4, rng)])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, np.random.default_rng(7).permutation(len(ds)))
    assert rng.bit_generator.state == after_one_epoch
    second = np.concatenate([xb[:, 0] for xb, _ in ds.batches(4, rng)])
    assert not np.array_equal(first, second)


def test_batches_draws_eagerly_and_unshuffled_leaves_rng_alone():
    ds = make_dataset()
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    ds.batches(4, rng, shuffle=False)
    assert rng.bit_generator.state == state
    ds.batches(4, rng)  # not iterated: the permutation is drawn at call time
    assert rng.bit_generator.state != state


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_batches_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset().batches(batch_size)


# --- digits --------------------------------------------------------------------------------------


def test_load_digits_flat():
    pytest.importorskip("sklearn")
    ds = load_digits()
    assert len(ds) == 1797 and ds.x.shape == (1797, 64) and ds.x.dtype == np.float64
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert ds.y.dtype == np.int64 and set(np.unique(ds.y)) == set(range(10))
    assert ds.name == "digits" and ds.num_classes == 10


def test_load_digits_images_float32():
    pytest.importorskip("sklearn")
    flat = load_digits()
    ds = load_digits(dtype="float32", images=True)
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == np.float32
    np.testing.assert_allclose(ds.x.reshape(1797, 64), flat.x, rtol=1e-6)


def test_load_digits_without_sklearn_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    with pytest.raises(ImportError, match=r"pip install 'graphc\[data\]'"):
        load_digits()


def test_load_digits_rejects_integer_dtype():
    with pytest.raises(ValueError, match="floating-point"):
        load_digits(dtype="int32")


# --- IDX round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / f"a-{dtype}{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, array)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if suffix else b"\x00\x00")


def test_idx_header_layout_is_big_endian(tmp_path):
    path = tmp_path / "x"
    write_idx(path, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16))
    raw = path.read_bytes()
    assert raw[:4] == b"\x00\x00\x0b\x02"
    assert struct.unpack(">II", raw[4:12]) == (2, 3)
    assert struct.unpack(">6h", raw[12:]) == (1, 2, 3, 4, 5, 6)


def test_idx_reads_big_endian_data_into_native_order(tmp_path):
    path = tmp_path / "b"
    write_idx(path, np.array([1.5, -2.0], dtype=">f8"))
    back = read_idx(path)
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, [1.5, -2.0])


def test_idx_empty_and_one_dim(tmp_path):
    write_idx(tmp_path / "e", np.zeros((0, 4), dtype=np.uint8))
    assert read_idx(tmp_path / "e").shape == (0, 4)
    write_idx(tmp_path / "v.gz", np.arange(7, dtype=np.int32))
    np.testing.assert_array_equal(read_idx(tmp_path / "v.gz"), np.arange(7))


def test_write_idx_rejects_unsupported_arrays(tmp_path):
    with pytest.raises(DataError, match=r"bad.*int64"):
        write_idx(tmp_path / "bad", np.arange(3, dtype=np.int64))
    with pytest.raises(DataError, match=r"scalar.*0-d"):
        write_idx(tmp_path / "scalar", np.float32(1.0))


# --- IDX bad files -------------------------------------------------------------------------------


def good_idx_bytes() -> bytes:
    """A valid 2x3 unsigned-byte IDX file: magic 0x00000802, dims 2 and 3, six bytes of data."""
    return b"\x00\x00\x08\x02" + struct.pack(">II", 2, 3) + bytes(range(6))


@pytest.mark.parametrize(
    ("content", "patterns"),
    [
        (b"\x00\x00\x08", ["3 bytes", "4-byte IDX magic"]),
        (b"\x00\x00\x08\x02" + struct.pack(">I", 2), ["8 bytes", "12-byte header"]),
        (good_idx_bytes()[:-2], ["truncated", "2x3", "6 bytes of data", "file has 4"]),
        (good_idx_bytes() + b"\x00\x00\x00", ["3 trailing bytes", "6 bytes of data", "has 9"]),
        (b"\x01\x00" + good_idx_bytes()[2:], ["two zero bytes", "0x01 0x00"]),
        (b"\x00\x00\x0a\x02" + good_idx_bytes()[4:], ["unknown IDX type code 0x0A", "0x00000A02"]),
        (b"\x00\x00\x08\x00", ["zero dimensions", "0x00000800"]),
    ],
    ids=["short-magic", "short-dims", "truncated", "trailing", "bad-magic", "type", "zero-dims"],
)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_bad_files(tmp_path, content, patterns, suffix):
    path = tmp_path / f"broken-idx1-ubyte{suffix}"
    path.write_bytes(gzip.compress(content) if suffix else content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert path.name in message
    for pattern in patterns:
        assert pattern in message


def test_read_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(good_idx_bytes())[:-6])
    with pytest.raises(DataError, match=r"cut\.gz: corrupt gzip"):
        read_idx(path)


def test_read_idx_missing_file_is_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# --- MNIST ---------------------------------------------------------------------------------------


def write_mnist(
    directory: Path,
    kind: str = "train",
    n_images: int = 8,
    labels: np.ndarray | None = None,
    suffix: str = "",
) -> np.ndarray:
    """Write a tiny MNIST-shaped pair of files (4x5 images) and return the pixels."""
    pixels = np.random.default_rng(1).integers(0, 256, (n_images, 4, 5), dtype=np.uint8)
    pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255
    if labels is None:
        labels = np.arange(n_images, dtype=np.uint8) % 10
    write_idx(directory / f"{kind}-images-idx3-ubyte{suffix}", pixels)
    write_idx(directory / f"{kind}-labels-idx1-ubyte{suffix}", labels)
    return pixels


@pytest.mark.parametrize(("kind", "suffix"), [("train", ""), ("t10k", ".gz")])
def test_load_mnist(tmp_path, kind, suffix):
    pixels = write_mnist(tmp_path, kind, suffix=suffix)
    ds = load_mnist(tmp_path, kind)
    assert ds.name == f"mnist-{kind}" and ds.num_classes == 10
    assert ds.x.shape == (8, 20) and ds.x.dtype == np.float64
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    np.testing.assert_allclose(ds.x, pixels.reshape(8, 20) / 255)
    np.testing.assert_array_equal(ds.y, np.arange(8))
    assert ds.y.dtype == np.int64


def test_load_mnist_images_float32(tmp_path):
    pixels = write_mnist(tmp_path)
    ds = load_mnist(str(tmp_path), dtype="float32", images=True)
    assert ds.x.shape == (8, 1, 4, 5) and ds.x.dtype == np.float32
    np.testing.assert_allclose(ds.x[:, 0], pixels / np.float32(255), rtol=1e-6)


def test_load_mnist_rejects_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="'test'"):
        load_mnist(tmp_path, "test")


def test_load_mnist_missing_file_lists_names(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 4, 5), dtype=np.uint8))
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "train-labels-idx1-ubyte, train-labels-idx1-ubyte.gz" in message


def test_load_mnist_missing_directory(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*train-images-idx3-ubyte\.gz"):
        load_mnist(tmp_path / "absent")


def test_load_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path, labels=np.arange(7, dtype=np.uint8))
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte has 8 images" in message
    assert "train-labels-idx1-ubyte has 7 labels" in message


def test_load_mnist_label_out_of_range(tmp_path):
    labels = np.arange(8, dtype=np.uint8) % 10
    labels[5], labels[6] = 12, 200
    write_mnist(tmp_path, labels=labels)
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "train-labels-idx1-ubyte" in message
    assert "found label 12 at index 5, expected 0..9" in message


def test_load_mnist_wrong_magic_for_labels(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((8, 1, 1), dtype=np.uint8))
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "train-labels-idx1-ubyte" in message
    assert "expected magic 0x00000801 (unsigned byte, 1 dimension), found 0x00000803" in message


def test_load_mnist_wrong_type_for_images(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((8, 4, 5), dtype=np.float32))
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message
    assert "expected magic 0x00000803" in message
    assert "found 0x00000D03 (float32, 3 dimensions)" in message


def test_load_mnist_truncated_images_file(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-150])
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message
    assert "header says 8x4x5 unsigned byte values = 160 bytes of data, file has 10" in message
