"""Shapes with named symbolic dimensions, and NumPy's broadcasting rule over them.

A dimension is an ``int`` (known when the graph is declared) or a ``str`` naming a size
that is only known when the program runs ("batch"). Two different names are two different
sizes; a name and a number never unify at declaration time. When a program is called, every
name is bound to one size across all of its inputs (see ``graphc.backend.program``).
"""

from __future__ import annotations

from collections.abc import Sequence

from graphc.errors import ShapeError

Dim = int | str
Shape = tuple[Dim, ...]


def normalize_shape(shape: Sequence[Dim] | Dim) -> Shape:
    """A user's shape as a tuple of dims, checking that each is a size >= 0 or a name."""
    if isinstance(shape, (int, str)):
        shape = (shape,)
    dims = tuple(shape)
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, str)):
            raise TypeError(f"a dimension must be an int or a name, got {d!r} in {dims!r}")
        if isinstance(d, int) and d < 0:
            raise ShapeError(f"a dimension must be >= 0, got {d} in {dims!r}")
        if isinstance(d, str) and not d.isidentifier():
            raise ShapeError(f"a named dimension must be an identifier, got {d!r} in {dims!r}")
    return dims


def sizes_of(shape: Shape) -> tuple[int, ...] | None:
    """The dims of ``shape`` as numbers, or None where it names a dimension."""
    sizes = tuple(d for d in shape if isinstance(d, int))
    return sizes if len(sizes) == len(shape) else None


def format_shape(shape: Shape) -> str:
    """``(batch, 128)``: a shape as it reads in comments and error messages."""
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def broadcast_dims(a: Dim, b: Dim) -> Dim | None:
    """The broadcast of two dims, or None where they do not fit."""
    if a == b or b == 1:
        return a
    if a == 1:
        return b
    return None


def broadcast_shapes(*shapes: Shape) -> Shape | None:
    """NumPy broadcasting of several shapes, or None where they do not fit."""
    ndim = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for axis in range(ndim):
        dim: Dim = 1
        for s in shapes:
            k = axis - (ndim - len(s))
            if k < 0:
                continue
            joined = broadcast_dims(dim, s[k])
            if joined is None:
                return None
            dim = joined
        out.append(dim)
    return tuple(out)


def broadcast_axes(small: Shape, big: Shape) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The axes of ``big`` that broadcasting ``small`` up to ``big`` added or stretched.

    Returns ``(leading, stretched)``: summing the leading axes away and the stretched ones
    with ``keepdims`` turns an array of shape ``big`` back into shape ``small``. This is
    the gradient of broadcasting.
    """
    lead = len(big) - len(small)
    leading = tuple(range(lead))
    stretched = tuple(
        i - lead for i in range(lead, len(big)) if small[i - lead] == 1 and big[i] != 1
    )
    return leading, stretched


def normalize_axis(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """Axes as a sorted tuple of non-negative ints; None means all axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for an array of {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(sorted(out))
