"""Reductions along axes (sum, mean, max, and argmax, which has no gradient), with the two
ops their gradients are made of: ``expand``, the broadcast back that is a sum's adjoint, and
``size``, the number of entries a mean divides by."""

from __future__ import annotations

import numpy as np
import sympy as sp

from graphc.errors import ShapeError
from graphc.ir.node import Array, Node, Storage
from graphc.ir.shapes import format_shape, normalize_axis
from graphc.ops.elementwise import from_expr
from graphc.ops.leaves import constant
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
        return as_node_dtype(self.call(node, args[0]), node, node.inputs)

    def call(self, node: Node, x: str, out: str | None = None) -> str:
        """``x.sum(axis=1)``, ``x.max(axis=(0, 2), keepdims=True)``, with ``out=`` if given."""
        axes, keep = node.attrs["axes"], node.attrs["keepdims"]
        arguments = []
        if len(axes) != node.inputs[0].ndim or keep:
            arguments.append(f"axis={axes[0] if len(axes) == 1 else axes}")
        if keep:
            arguments.append("keepdims=True")
        if out is not None:
            arguments.append(f"out={out}")
        return f"{x}.{self.method}({', '.join(arguments)})"

    def expand_grad(self, node, g):
        """g broadcast back to the input's shape."""
        x = node.inputs[0]
        return expand(g, x, () if node.attrs["keepdims"] else node.attrs["axes"])


class Sum(Reduce):
    name = "sum"
    fresh = True
    method = "sum"

    def storage(self, node):
        """A sum of a float matrix over its rows (a bias gradient) is a product with ones,
        which BLAS computes two to three times faster than ``g.sum(axis=0)``; any other sum
        of an array of its own dtype to an array writes with ``out=``."""
        x = node.inputs[0]
        if x.dtype != node.dtype or not node.shape:
            return ()
        if x.ndim == 2 and node.attrs["axes"] == (0,) and not node.attrs["keepdims"]:
            return (Storage((Array("ones", x.shape[:1], node.dtype, fill=1),)),)
        return (Storage(),)

    def emit(self, node, args, e):
        arrays = e.arrays(node)
        if arrays is None:
            return super().emit(node, args, e)
        if not arrays.arrays:
            return self.call(node, args[0], out=arrays.out)
        return [f"# {e.target(node)} = {args[0]}.sum(axis=0), as a product with ones: "
                "BLAS beats np.sum",
                f"np.matmul({arrays.arrays[0]}, {args[0]}, out={arrays.out})"]

    def vjp(self, node, g):
        return [self.expand_grad(node, g)]


class Mean(Reduce):
    name = "mean"
    fresh = True
    method = "mean"

    def vjp(self, node, g):
        gx, n = sp.symbols("g n", real=True)
        count = size(node.inputs[0], node.attrs["axes"])
        return [from_expr("mean'", gx / n, {gx: self.expand_grad(node, g), n: count})]


class Max(Reduce):
    """The largest entry; its gradient goes to the entries equal to it, shared among ties."""

    name = "max"
    fresh = True
    method = "max"

    def vjp(self, node, g):
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


class Expand(Op):
    """``g`` broadcast to the shape of ``like``, after re-inserting the reduced ``axes``:
    the gradient of a sum."""

    name = "expand"

    def label(self, node):
        return "broadcast"

    def infer(self, inputs, attrs):
        g, like = inputs
        return like.shape, g.dtype

    def _index(self, node):
        axes, n = node.attrs["axes"], node.ndim
        return tuple(None if i in axes else slice(None) for i in range(n))

    def evaluate(self, node, args):
        g, like = args
        return np.broadcast_to(g[self._index(node)], like.shape).copy()

    def emit(self, node, args, e):
        index = self._index(node)
        g = args[0]
        if node.attrs["axes"] and any(i is not None for i in index):
            last = max(i for i, v in enumerate(index) if v is None)
            g += "[" + ", ".join("None" if v is None else ":" for v in index[:last + 1]) + "]"
        return f"np.broadcast_to({g}, {e.shape(node.shape)})"

    def vjp(self, node, g):
        return [reduce_sum(g, node.attrs["axes"], keepdims=False), None]


def expand(g, like, axes=()):
    """Broadcast ``g`` (reduced over ``axes`` without keepdims) back to ``like``'s shape."""
    return make("expand", (g, like), axes=tuple(axes))



class Size(Op):
    """The number of elements along some axes of x, at run time (for means over a batch)."""

    name = "size"
    fresh = True
    differentiable = False
    inline = True

    def label(self, node):
        return "count"

    def infer(self, inputs, attrs):
        return (), float_dtype(inputs[0])

    def evaluate(self, node, args):
        return np.asarray(np.prod([args[0].shape[a] for a in node.attrs["axes"]]),
                          dtype=node.dtype)

    def emit(self, node, args, e):
        x = node.inputs[0]
        return " * ".join(e.dim(x.shape[a]) for a in node.attrs["axes"]) or "1"


def size(x, axes):
    """Elements of x along ``axes``: a number where the dims are known, else a node."""
    dims = [x.shape[a] for a in axes]
    if all(isinstance(d, int) for d in dims):
        return constant(float(np.prod(dims)), dtype=float_dtype(x))
    return make("size", (x,), axes=tuple(axes))


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
