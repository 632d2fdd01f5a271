"""An in-memory labelled dataset: features, integer class labels, and the ways training slices them.

The class is deliberately small. It validates once, at construction, so every later step (split,
batching, the trainer) can trust that rows line up and labels index a one-hot of `num_classes`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from graphc.errors import DataError


def float_dtype(dtype: DTypeLike) -> np.dtype:
    """Return `dtype` as a NumPy dtype, refusing non-floating ones (pixels scaled to [0, 1])."""
    result = np.dtype(dtype)
    if result.kind != "f":
        raise ValueError(f"dtype must be a floating-point type such as 'float64', got {result}")
    return result


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Features `x` (one row per example) with int64 class labels `y` in 0..num_classes-1.

    Frozen so a dataset handed to a trainer cannot be rebound under it; the arrays themselves are
    ordinary NumPy arrays. Every method that derives a dataset returns a new one.
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    name: str = "dataset"

    def __post_init__(self) -> None:
        x = np.asarray(self.x)
        y = np.asarray(self.y)
        where = f"dataset {self.name!r}"
        if x.ndim < 1:
            raise DataError(f"{where}: x must have one row per example, got a 0-d array")
        if y.ndim != 1:
            raise DataError(f"{where}: y must be 1-D (one label per row), got shape {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{where}: x has {x.shape[0]} rows but y has {y.shape[0]} labels")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{where}: y must hold integer class labels, got dtype {y.dtype}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int | np.integer):
            raise DataError(f"{where}: num_classes must be an int, got {self.num_classes!r}")
        if self.num_classes < 1:
            raise DataError(f"{where}: num_classes must be at least 1, got {self.num_classes}")
        bad = np.flatnonzero((y < 0) | (y >= self.num_classes))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{where}: labels out of range: found label {int(y[i])} at index {i}, "
                f"expected 0..{self.num_classes - 1}"
            )
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y.astype(np.int64, copy=False))
        object.__setattr__(self, "num_classes", int(self.num_classes))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, rows={len(self)}, x={self.x.shape} {self.x.dtype}, "
            f"num_classes={self.num_classes})"
        )

    def astype(self, dtype: DTypeLike) -> Dataset:
        """Return a copy whose `x` is cast to `dtype` (labels unchanged)."""
        return Dataset(self.x.astype(dtype), self.y.copy(), self.num_classes, self.name)

    def subset(self, indices: ArrayLike) -> Dataset:
        """Return the rows at integer `indices` (copied, in the order given)."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise ValueError(
                f"subset of {self.name!r}: indices must be a 1-D integer array, "
                f"got shape {idx.shape} dtype {idx.dtype}"
            )
        idx = idx.astype(np.intp, copy=False)
        return Dataset(self.x[idx], self.y[idx], self.num_classes, self.name)

    def split(
        self, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
    ) -> tuple[Dataset, ...]:
        """Shuffle with `np.random.default_rng(seed)` and cut into len(fractions) disjoint parts.

        Part sizes are the rounded cumulative fractions of len(self), so together they cover every
        row exactly once. Parts are named `"<name>[i/k]"`.
        """
        fracs = np.asarray(fractions, dtype=np.float64)
        if fracs.ndim != 1 or fracs.size == 0 or np.any(fracs < 0):
            raise ValueError(f"split fractions must be non-negative numbers, got {fractions!r}")
        if abs(float(fracs.sum()) - 1.0) > 1e-9:
            raise ValueError(f"split fractions must sum to 1, got {fractions!r} = {fracs.sum()!r}")
        n = len(self)
        order = np.random.default_rng(seed).permutation(n)
        bounds = np.rint(np.cumsum(fracs) * n).astype(np.intp)
        bounds[-1] = n
        starts = np.concatenate(([0], bounds[:-1]))
        k = fracs.size
        parts = [order[a:b] for a, b in zip(starts, bounds, strict=True)]
        return tuple(
            Dataset(self.x[idx], self.y[idx], self.num_classes, f"{self.name}[{i}/{k}]")
            for i, idx in enumerate(parts)
        )

    def batches(
        self,
        batch_size: int,
        rng: np.random.Generator | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield one epoch of `(x_batch, y_batch)` pairs of at most `batch_size` rows.

        With `shuffle`, the order is exactly one `rng.permutation(len(self))`, drawn now (not on
        first iteration), so a trainer that saves and restores the generator's state reproduces
        the epoch. `rng=None` draws from a fresh, unseeded generator. Without `shuffle`, rows come
        in order and `rng` is not touched. `drop_last` skips a final short batch.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size}")
        n = len(self)
        if shuffle:
            order = (rng if rng is not None else np.random.default_rng()).permutation(n)
        else:
            order = np.arange(n)
        stop = n - n % batch_size if drop_last else n
        return self._take(order, int(batch_size), stop)

    def _take(
        self, order: np.ndarray, batch_size: int, stop: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, stop, batch_size):
            idx = order[start : min(start + batch_size, stop)]
            yield self.x[idx], self.y[idx]
