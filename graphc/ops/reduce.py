"""Reductions along axes: sum, mean, max, and argmax (which has no gradient)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from graphc.errors import ShapeError
from graphc.ir.node import Node
from graphc.ir.shapes import format_shape, normalize_axis
from graphc.ops.registry import Op, as_node_dtype, float_dtype, make


class Reduce(Op):
    """A reduction with ``axes`` (sorted, non-negative) and ``keepdims``."""

    method: str

    def label(self, node):
        return self.name

    def infer(self, inputs, attrs):
        (x,) = inputs
        axes, keep = attrs["axes"], attrs["keepdims"]
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keep else \
            tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return shape, self.out_dtype(x)

    def out_dtype(self, x):
        return float_dtype(x)

    def evaluate(self, node, args):
        fn = getattr(np, self.method)
        return np.asarray(fn(args[0], axis=node.attrs["axes"], keepdims=node.attrs["keepdims"]),
                          dtype=node.dtype)

    def emit(self, node, args, e):
        axes, keep = node.attrs["axes"], node.attrs["keepdims"]
        if len(axes) == node.inputs[0].ndim and not keep:
            code = f"{args[0]}.{self.method}()"
        else:
            axis = axes[0] if len(axes) == 1 else axes
            code = f"{args[0]}.{self.method}(axis={axis}{', keepdims=True' if keep else ''})"
        return as_node_dtype(code, node, node.inputs)

    def expand_grad(self, node, g):
        """g broadcast back to the input's shape."""
        from graphc.ops.tensor import expand

        x = node.inputs[0]
        return expand(g, x, () if node.attrs["keepdims"] else node.attrs["axes"])


class Sum(Reduce):
    name = "sum"
    fresh = True
    method = "sum"

    def vjp(self, node, g):
        return [self.expand_grad(node, g)]


class Mean(Reduce):
    name = "mean"
    fresh = True
    method = "mean"

    def vjp(self, node, g):
        from graphc.ops.elementwise import from_expr
        from graphc.ops.tensor import size

        gx, n = sp.symbols("g n", real=True)
        count = size(node.inputs[0], node.attrs["axes"])
        return [from_expr("mean'", gx / n, {gx: self.expand_grad(node, g), n: count})]


class Max(Reduce):
    """The largest entry; its gradient goes to the entries equal to it, shared among ties."""

    name = "max"
    fresh = True
    method = "max"

    def vjp(self, node, g):
        from graphc.ops.elementwise import from_expr
        from graphc.ops.tensor import expand

        x = node.inputs[0]
        axes = node.attrs["axes"]
        xs, ms = sp.symbols("x m", real=True)
        top = expand(node, x, () if node.attrs["keepdims"] else axes)
        mask = from_expr("is max", sp.Piecewise((1, sp.Eq(xs, ms)), (0, True)),
                         {xs: x, ms: top}, dtype=x.dtype)
        ties = reduce_sum(mask, axes, keepdims=True)
        gs, ks, ts = sp.symbols("g k t", real=True)
        return [from_expr("max'", gs * ks / ts,
                          {gs: self.expand_grad(node, g), ks: mask, ts: ties})]


class ArgMax(Reduce):
    name = "argmax"
    fresh = True
    method = "argmax"
    differentiable = False

    def infer(self, inputs, attrs):
        if len(attrs["axes"]) != 1:
            raise ShapeError("argmax takes exactly one axis")
        return super().infer(inputs, attrs)

    def out_dtype(self, x):
        return np.dtype("int64")

    def evaluate(self, node, args):
        return np.argmax(args[0], axis=node.attrs["axes"][0], keepdims=node.attrs["keepdims"])


def axes_of(op: str, x: Node, axis: object, single: bool = False) -> tuple[int, ...]:
    """The axes of ``x`` that ``axis`` names (None for all, an int, or a sequence of ints;
    with ``single``, one int), sorted and non-negative. A ShapeError names the op, the axis
    and the shape for anything else: a float, a dimension's name, an axis out of range."""
    shape = format_shape(x.shape)
    items = (axis,) if is_int(axis) else axis if isinstance(axis, (tuple, list)) else None
    if axis is None and not single:
        items = ()
    if items is None or single and len(items) != 1 or not all(is_int(a) for a in items):
        hint = ""
        if isinstance(axis, str) and axis in x.shape:
            hint = f"; dimension {axis!r} is axis {x.shape.index(axis)}"
        wanted = "an int" if single else "an int, a sequence of ints or None"
        raise ShapeError(f"{op}: axis must be {wanted}, got {axis!r} for shape {shape}{hint}")
    try:
        return normalize_axis(None if axis is None else [int(a) for a in items], x.ndim)
    except ValueError as err:
        raise ShapeError(f"{op}: {err} of shape {shape}") from None


def is_int(value: object) -> bool:
    """Whether ``value`` is an integer (Python's or NumPy's), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _reduce(op: str, x: Node, axis: object, keepdims: bool) -> Node:
    return make(op, (x,), axes=axes_of(op, x, axis), keepdims=bool(keepdims))


def reduce_sum(x, axis=None, keepdims=False):
    return _reduce("sum", x, axis, keepdims)


def reduce_mean(x, axis=None, keepdims=False):
    return _reduce("mean", x, axis, keepdims)


def reduce_max(x, axis=None, keepdims=False):
    return _reduce("max", x, axis, keepdims)


def argmax(x, axis=-1, keepdims=False):
    return _reduce("argmax", x, axis, keepdims)
