"""Tensor ops: matrix products, axis permutations, reshapes, concatenation, broadcasting."""

from __future__ import annotations

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.node import Node, Storage
from graphc.ir.shapes import Dim, broadcast_shapes, format_shape, normalize_shape
from graphc.ops.elementwise import sum_to
from graphc.ops.registry import Op, as_node_dtype, float_dtype, make


class MatMul(Op):
    """``a @ b`` on operands of two or more dimensions, batch dimensions broadcast."""

    name = "matmul"
    fresh = True

    def label(self, node):
        return "@"

    def infer(self, inputs, attrs):
        a, b = inputs
        if a.ndim < 2 or b.ndim < 2:
            raise ShapeError(f"needs operands of 2 or more dimensions, got "
                             f"{format_shape(a.shape)} and {format_shape(b.shape)}")
        if a.shape[-1] != b.shape[-2]:
            raise ShapeError(f"cannot multiply {format_shape(a.shape)} by "
                             f"{format_shape(b.shape)}: inner dimensions {a.shape[-1]} and "
                             f"{b.shape[-2]} differ")
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
        if batch is None:
            raise ShapeError(f"batch dimensions of {format_shape(a.shape)} and "
                             f"{format_shape(b.shape)} do not broadcast")
        return batch + (a.shape[-2], b.shape[-1]), float_dtype(a, b)

    def evaluate(self, node, args):
        return np.matmul(*args).astype(node.dtype)

    def storage(self, node):
        return (Storage(),)

    def emit(self, node, args, e):
        arrays = e.arrays(node)
        if arrays is not None:
            return f"np.matmul({args[0]}, {args[1]}, out={arrays.out})"
        return as_node_dtype(f"{args[0]} @ {args[1]}", node, node.inputs)

    def vjp(self, node, g):
        a, b = node.inputs
        return [sum_to(matmul(g, swap_last(b)), a.shape), sum_to(matmul(swap_last(a), g), b.shape)]


def matmul(a, b):
    return make("matmul", (a, b))


class Transpose(Op):
    """A permutation of axes (a view in NumPy)."""

    name = "transpose"
    inline = True

    def label(self, node):
        return "T" if node.attrs["axes"] == tuple(reversed(range(node.ndim))) else "transpose"

    def infer(self, inputs, attrs):
        (x,) = inputs
        axes = attrs["axes"]
        if sorted(axes) != list(range(x.ndim)):
            raise ShapeError(f"axes {axes} are not a permutation of the {x.ndim} axes of "
                             f"{format_shape(x.shape)}")
        return tuple(x.shape[a] for a in axes), x.dtype

    def evaluate(self, node, args):
        return np.transpose(args[0], node.attrs["axes"])

    def emit(self, node, args, e):
        axes = node.attrs["axes"]
        if axes == tuple(reversed(range(node.ndim))):
            return f"{args[0]}.T"
        n = node.ndim
        if axes == tuple(range(n - 2)) + (n - 1, n - 2):
            return f"np.swapaxes({args[0]}, -1, -2)"
        return f"np.transpose({args[0]}, {axes})"

    def vjp(self, node, g):
        return [transpose(g, tuple(int(i) for i in np.argsort(node.attrs["axes"])))]


def transpose(x, axes=None):
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % max(x.ndim, 1)
                                                                        for a in axes)
    return make("transpose", (x,), axes=axes)


def swap_last(x):
    """x with its last two axes swapped: the transpose of a (batch of) matrices."""
    n = x.ndim
    return transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


class Reshape(Op):
    name = "reshape"

    def infer(self, inputs, attrs):
        (x,) = inputs
        return attrs["shape"], x.dtype

    def evaluate(self, node, args):
        return np.reshape(args[0], node.attrs["runtime"](args[0].shape))

    def emit(self, node, args, e):
        return f"{args[0]}.reshape({e.shape(node.shape)})"

    def vjp(self, node, g):
        return [reshape(g, node.inputs[0].shape)]


def reshape(x, shape):
    """x with a new shape of the same size; one dimension may be -1 (inferred)."""
    shape = tuple(shape) if not isinstance(shape, (int, str)) else (shape,)
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape to {shape}: at most one dimension may be -1")
    known = normalize_shape(tuple(d for d in shape if d != -1))
    out = _infer_reshape(x.shape, shape, known)
    names = {d: i for i, d in enumerate(x.shape) if isinstance(d, str)}

    def runtime(in_shape):
        return tuple(in_shape[names[d]] if isinstance(d, str) else d for d in out)

    return make("reshape", (x,), shape=out, runtime=runtime)


def _infer_reshape(src: tuple[Dim, ...], shape, known) -> tuple[Dim, ...]:
    def split(dims):
        names = sorted(d for d in dims if isinstance(d, str))
        size = int(np.prod([d for d in dims if isinstance(d, int)], dtype=np.int64))
        return names, size

    src_names, src_size = split(src)
    dst_names, dst_size = split(known)
    if -1 not in shape:
        if src_names != dst_names or src_size != dst_size:
            raise ShapeError(f"cannot reshape {format_shape(src)} to {format_shape(known)}")
        return known
    rest = list(src_names)
    for n in dst_names:
        if n not in rest:
            raise ShapeError(f"cannot reshape {format_shape(src)} to {shape}: "
                             f"dimension {n!r} is not in the input")
        rest.remove(n)
    if rest:
        raise ShapeError(f"cannot reshape {format_shape(src)} to {shape}: the named "
                         f"dimension(s) {rest} must appear in the new shape (-1 cannot stand "
                         "for a named dimension)")
    if dst_size == 0 or src_size % dst_size:
        raise ShapeError(f"cannot reshape {format_shape(src)} to {shape}: the -1 dimension "
                         "is not a whole number")
    return tuple(src_size // dst_size if d == -1 else d for d in shape)


class Concatenate(Op):
    name = "concatenate"
    fresh = True

    def infer(self, inputs, attrs):
        axis = attrs["axis"]
        first = inputs[0].shape
        for x in inputs[1:]:
            if len(x.shape) != len(first) or any(
                    a != b for i, (a, b) in enumerate(zip(x.shape, first)) if i != axis):
                shapes = ", ".join(format_shape(n.shape) for n in inputs)
                raise ShapeError(f"shapes {shapes} differ outside axis {axis}")
        along = [x.shape[axis] for x in inputs]
        if all(isinstance(d, int) for d in along):
            total: Dim = sum(along)
        else:
            raise ShapeError(f"concatenating along a named dimension ({along}) is not supported")
        return first[:axis] + (total,) + first[axis + 1:], float_dtype(*inputs)

    def evaluate(self, node, args):
        return np.concatenate(args, axis=node.attrs["axis"]).astype(node.dtype)

    def emit(self, node, args, e):
        code = f"np.concatenate([{', '.join(args)}], axis={node.attrs['axis']})"
        return as_node_dtype(code, node, node.inputs)

    def vjp(self, node, g):
        axis = node.attrs["axis"]
        grads, start = [], 0
        for x in node.inputs:
            stop = start + x.shape[axis]
            grads.append(make("slice", (g,), axis=axis, start=start, stop=stop))
            start = stop
        return grads


class Slice(Op):
    """``x[..., start:stop, ...]`` along one axis (the gradient of concatenation)."""

    name = "slice"

    def infer(self, inputs, attrs):
        (x,) = inputs
        axis = attrs["axis"]
        return x.shape[:axis] + (attrs["stop"] - attrs["start"],) + x.shape[axis + 1:], x.dtype

    def _index(self, node):
        a = node.attrs
        return (slice(None),) * a["axis"] + (slice(a["start"], a["stop"]),)

    def evaluate(self, node, args):
        return args[0][self._index(node)]

    def emit(self, node, args, e):
        a = node.attrs
        return f"{args[0]}[{':, ' * a['axis']}{a['start']}:{a['stop']}]"

    def vjp(self, node, g):
        (x,) = node.inputs
        a = node.attrs
        return [make("pad_slice", (g, x), axis=a["axis"], start=a["start"], stop=a["stop"])]


class PadSlice(Op):
    """Zeros shaped like ``like`` with ``g`` written into one slice: the gradient of a slice."""

    name = "pad_slice"
    fresh = True

    def infer(self, inputs, attrs):
        g, like = inputs
        return like.shape, g.dtype

    def evaluate(self, node, args):
        out = np.zeros(args[1].shape, dtype=node.dtype)
        out[OPS_SLICE._index(node)] = args[0]
        return out

    def emit(self, node, args, e):
        a = node.attrs
        t = e.target(node)
        return [f"{t} = np.zeros({args[1]}.shape, dtype=np.{node.dtype.name})",
                f"{t}[{':, ' * a['axis']}{a['start']}:{a['stop']}] = {args[0]}"]

    def vjp(self, node, g):
        a = node.attrs
        return [make("slice", (g,), axis=a["axis"], start=a["start"], stop=a["stop"]), None]


OPS_SLICE = Slice()


def concatenate(xs, axis=0):
    xs = tuple(xs)
    if not xs:
        raise ValueError("concatenate needs at least one node")
    ndim = xs[0].ndim
    if not -ndim <= axis < ndim:
        raise ShapeError(f"concatenate: axis {axis} is out of range for "
                         f"{format_shape(xs[0].shape)}" + (" (0-d nodes have no axis to join "
                                                            "along)" if ndim == 0 else ""))
    return make("concatenate", xs, axis=axis % ndim)


class Copy(Op):
    """A copy of x: the value of a parameter as it was before this step's update."""

    name = "copy"
    fresh = True

    def infer(self, inputs, attrs):
        return inputs[0].shape, inputs[0].dtype

    def evaluate(self, node, args):
        return np.array(args[0], copy=True)

    def emit(self, node, args, e):
        return f"{args[0]}.copy()"

    def vjp(self, node, g):
        return [g]


class Cast(Op):
    """x as another float dtype, rounded as NumPy rounds (``np.float32(step_size)``): what
    an optimizer's per-step numbers, computed in float64 as torch.optim computes them in
    Python, become before they scale float32 arrays."""

    name = "cast"
    fresh = True

    def label(self, node):
        return f"as {node.dtype.name}"

    def infer(self, inputs, attrs):
        dtype = np.dtype(attrs["dtype"])
        if dtype.kind != "f" or inputs[0].dtype.kind != "f":
            raise ShapeError(f"cast is between float dtypes, not {inputs[0].dtype} to {dtype}")
        return inputs[0].shape, dtype

    def evaluate(self, node, args):
        return np.asarray(args[0]).astype(node.dtype)

    def emit(self, node, args, e):
        if node.shape == ():
            return f"np.{node.dtype.name}({args[0]})"
        return f"{args[0]}.astype(np.{node.dtype.name})"

    def vjp(self, node, g):
        return [cast(g, node.inputs[0].dtype)]


def cast(x: Node, dtype: np.dtype) -> Node:
    """``x`` in float dtype ``dtype`` (``x`` itself where it has that dtype already)."""
    if x.dtype == np.dtype(dtype):
        return x
    node = make("cast", (x,), dtype=np.dtype(dtype).str)
    node.name = x.name and f"{x.name}_{node.dtype.name}"
    return node


class Zeros(Op):
    """Zeros shaped like its input: the gradient of a node the output does not depend on."""

    name = "zeros_like"
    fresh = True
    differentiable = False

    def infer(self, inputs, attrs):
        return inputs[0].shape, float_dtype(inputs[0])

    def evaluate(self, node, args):
        return np.zeros(args[0].shape, dtype=node.dtype)

    def emit(self, node, args, e):
        return f"np.zeros({e.shape(node.shape)}, dtype=np.{node.dtype.name})"
