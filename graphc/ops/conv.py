"""Convolution over NCHW images, with its gradients as graph ops.

``conv2d`` is computed by im2col: the kernel-sized windows of the padded input, a strided view
(``sliding_window_view``), are laid out as columns, so that the convolution is one batched
matrix product with the filters. Its gradients are ops of their own: ``conv2d_grad_weight``
(the same columns times the output gradient) and ``conv2d_grad_input`` (col2im: the product
of the filters with the output gradient, added back window offset by window offset). Each
op's ``evaluate`` is written independently and plainly, with loops over output positions, as
the oracle the generated code is tested against.
"""

from __future__ import annotations

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.node import Node
from graphc.ir.shapes import format_shape
from graphc.ops.reduce import reduce_sum
from graphc.ops.registry import Op, float_dtype, make
from graphc.ops.windows import (
    Pair,
    as_pair,
    crop_array,
    given_arrays,
    im2col_code,
    image_size,
    int_dims,
    offset_view,
    output_size,
    pad_array,
    padded_scratch,
    spatial,
    storage_with,
    window_positions,
)


# --- convolution -------------------------------------------------------------------------
class Conv2d(Op):
    """Cross-correlation of (N, C, H, W) images with (O, C, kh, kw) filters, plus a bias of
    shape (O,) when given as a third input: the convolution layer of deep learning."""

    name = "conv2d"
    fresh = True

    def infer(self, inputs, attrs):
        x, w, *bias = _without_columns(inputs, attrs)
        size = image_size(x, "an input")
        if w.ndim != 4 or not all(isinstance(d, int) for d in w.shape):
            raise ShapeError(f"needs filters of shape (out_channels, in_channels, kh, kw), got "
                             f"{format_shape(w.shape)}")
        if x.shape[1] != w.shape[1]:
            raise ShapeError(f"the input {format_shape(x.shape)} has {x.shape[1]} channels but "
                             f"the filters {format_shape(w.shape)} expect {w.shape[1]}")
        if bias and bias[0].shape != w.shape[:1]:
            raise ShapeError(f"the bias must have shape ({w.shape[0]},), one entry per filter, "
                             f"got {format_shape(bias[0].shape)}")
        out = output_size(size, w.shape[2:], attrs["stride"], attrs["padding"])
        return (x.shape[0], w.shape[0]) + out, float_dtype(x, w, *bias)

    def evaluate(self, node, args):
        x, w, *bias = _without_columns(args, node.attrs)  # the oracle lays out its own
        xp = pad_array(x, node.attrs["padding"])
        out = np.zeros((x.shape[0],) + node.shape[1:], dtype=node.dtype)
        for i, j, window in window_positions(node.shape[2:], w.shape[2:], node.attrs["stride"]):
            out[:, :, i, j] = np.tensordot(xp[window], w, axes=([1, 2, 3], [1, 2, 3]))
        if bias:
            out += bias[0][:, None, None]
        return out

    def storage(self, node):
        x, w = node.inputs[:2]
        if node.attrs.get("columns"):
            return storage_with()
        return storage_with(("cols", (x.shape[0], x.shape[1] * w.shape[2] * w.shape[3],
                                  node.shape[2] * node.shape[3]), x.dtype),
                        *padded_scratch(x, node.attrs["padding"]))

    def emit(self, node, args, e):
        """The filters times the columns of the windows (laid out here unless shared), plus
        the bias; into a fresh array, or into the arrays the plan gives."""
        out, scratch = given_arrays(node, e)
        x, w = node.inputs[:2]
        o, c, kh, kw = int_dims(w.shape)
        n, (oh, ow) = e.dim(node.shape[0]), spatial(node.shape)
        lines: list[str]
        if node.attrs.get("columns"):
            lines, cols = [], args[-1]
        else:
            lines, cols = im2col_code(args[0], x, (kh, kw), node.attrs["stride"],
                                       node.attrs["padding"], (oh, ow), e,
                                       into=scratch[0] if scratch else None,
                                       padded=scratch[1] if scratch and len(scratch) > 1
                                       else None)
        args = _without_columns(args, node.attrs)
        filters = f"{args[1]}.reshape({o}, {c * kh * kw})"
        bias = f"{args[2]}[:, None, None]" if len(args) == 3 else None
        if out is None:
            return lines + [f"{e.target(node)} = ({filters} @ {cols}).reshape({n}, {o}, {oh}, "
                            f"{ow})" + (f" + {bias}" if bias else "")]
        lines.append(f"np.matmul({filters}, {cols}, out={out}.reshape({n}, {o}, {oh * ow}))")
        return lines + ([f"{out} += {bias}"] if bias else [])

    def vjp(self, node, g):

        x, w, *bias = _without_columns(node.inputs, node.attrs)
        stride, padding = node.attrs["stride"], node.attrs["padding"]
        grads = [conv2d_grad_input(g, w, stride, padding, x.shape[2:]),
                 conv2d_grad_weight(g, x, w.shape[2:], stride, padding)]
        shared = [None] if node.attrs.get("columns") else []  # no gradient to the columns
        return grads + [reduce_sum(g, (0, 2, 3)) for _ in bias] + shared


class Conv2dGradInput(Op):
    """The gradient of conv2d with respect to its input, from the output's gradient ``g`` and
    the filters: each window's share ``w^T g`` added back where the window read (col2im)."""

    name = "conv2d_grad_input"
    fresh = True

    def label(self, node):
        return "conv2d dx"

    def infer(self, inputs, attrs):
        g, w = inputs
        return (g.shape[0], w.shape[1]) + attrs["size"], float_dtype(g, w)

    def evaluate(self, node, args):
        g, w = args
        padding = node.attrs["padding"]
        size = tuple(n + 2 * p for n, p in zip(node.attrs["size"], padding))
        dxp = np.zeros((g.shape[0], w.shape[1]) + size, dtype=node.dtype)
        for i, j, window in window_positions(g.shape[2:], w.shape[2:], node.attrs["stride"]):
            dxp[window] += np.tensordot(g[:, :, i, j], w, axes=(1, 0))
        return crop_array(dxp, padding)

    def storage(self, node):
        g, w = node.inputs
        n, (c, kh, kw), (oh, ow) = g.shape[0], w.shape[1:], g.shape[2:]
        padded = () if node.attrs["padding"] == (0, 0) else \
            (("g_padded", self._padded(node), node.dtype),)
        return storage_with(("g_cols", (n, c * kh * kw, oh * ow), node.dtype), *padded)

    @staticmethod
    def _padded(node: Node) -> tuple:
        """The shape of the gradient of the padded input."""
        return node.shape[:2] + tuple(s + 2 * p for s, p in zip(node.attrs["size"],
                                                                node.attrs["padding"]))

    def emit(self, node, args, e):
        """Each window's share ``w^T g``, then added back window offset by window offset;
        into fresh arrays, or into the arrays the plan gives."""
        out, scratch = given_arrays(node, e)
        g, w = args
        o, c, kh, kw = int_dims(node.inputs[1].shape)
        stride, padding = node.attrs["stride"], node.attrs["padding"]
        n, (oh, ow) = e.dim(node.shape[0]), spatial(node.inputs[0].shape)
        t, padded = e.target(node), self._padded(node)
        ki, kj = e.tmp("ki"), e.tmp("kj")
        product = f"{w}.reshape({o}, {c * kh * kw}).T, {g}.reshape({n}, {o}, {oh * ow})"
        if out is None or scratch is None:
            g_cols = e.tmp("g_cols")
            acc = e.tmp("g_padded") if padding != (0, 0) else t
            lines = [f"{g_cols} = np.matmul({product})",
                     f"{acc} = np.zeros({e.shape(padded)}, dtype=np.{node.dtype.name})"]
        else:
            g_cols, acc = scratch[0], scratch[1] if padding != (0, 0) else out
            lines = [f"np.matmul({product}, out={g_cols})", f"{acc}.fill(0)"]
        view = offset_view(acc, ki, kj, padded[2:], (kh, kw), stride, (oh, ow))
        lines += [f"for {ki}, {kj} in np.ndindex({kh}, {kw}):",
                  f"    {view} += {g_cols}.reshape({n}, {c}, {kh}, {kw}, {oh}, {ow})"
                  f"[:, :, {ki}, {kj}]"]
        if padding != (0, 0):
            (ph, pw), (height, width) = padding, node.attrs["size"]
            crop = f"{acc}[:, :, {ph}:{ph + height}, {pw}:{pw + width}]"
            lines.append(f"{t} = {crop}" if out is None else f"np.copyto({out}, {crop})")
        return lines

    def vjp(self, node, h):
        g, w = node.inputs
        stride, padding = node.attrs["stride"], node.attrs["padding"]
        # <h, dx(g, w)> = <conv2d(h, w), g>: differentiate that instead
        return [conv2d(h, w, stride=stride, padding=padding),
                conv2d_grad_weight(g, h, w.shape[2:], stride, padding)]


class Conv2dGradWeight(Op):
    """The gradient of conv2d with respect to its filters, from the output's gradient ``g``
    and the input: each filter tap sums g times the input it met, over examples and windows."""

    name = "conv2d_grad_weight"
    fresh = True

    def label(self, node):
        return "conv2d dw"

    def infer(self, inputs, attrs):
        g, x = _without_columns(inputs, attrs)
        return (g.shape[1], x.shape[1]) + attrs["kernel"], float_dtype(g, x)

    def evaluate(self, node, args):
        g, x = _without_columns(args, node.attrs)
        xp = pad_array(x, node.attrs["padding"])
        dw = np.zeros(node.shape, dtype=node.dtype)
        kernel, stride = node.attrs["kernel"], node.attrs["stride"]
        for i, j, window in window_positions(g.shape[2:], kernel, stride):
            dw += np.tensordot(g[:, :, i, j], xp[window], axes=(0, 0))
        return dw

    def storage(self, node):
        g, x = node.inputs[:2]
        o, c, kh, kw = node.shape
        n, p = g.shape[0], g.shape[2] * g.shape[3]
        cols = () if node.attrs.get("columns") else \
            (("cols", (n, c * kh * kw, p), x.dtype),) + padded_scratch(x, node.attrs["padding"])
        return storage_with(("products", (n, o, c * kh * kw), node.dtype), *cols)

    def emit(self, node, args, e):
        """Per example, g times the columns of its windows, summed over the batch; into
        fresh arrays, or into the arrays the plan gives."""
        out, scratch = given_arrays(node, e)
        g, x = node.inputs[:2]
        o, c, kh, kw = int_dims(node.shape)
        size, n = spatial(g.shape), e.dim(g.shape[0])
        lines: list[str]
        if node.attrs.get("columns"):
            lines, cols = [], args[2]
        else:
            lines, cols = im2col_code(args[1], x, (kh, kw), node.attrs["stride"],
                                       node.attrs["padding"], size, e,
                                       into=None if scratch is None else scratch[1],
                                       padded=None if scratch is None or len(scratch) < 3
                                       else scratch[2])
        product = f"{args[0]}.reshape({n}, {o}, {size[0] * size[1]}), {cols}.transpose(0, 2, 1)"
        if scratch is None:
            return lines + [f"{e.target(node)} = np.matmul({product}).sum(axis=0)"
                            f".reshape({o}, {c}, {kh}, {kw})"]
        return lines + [f"np.matmul({product}, out={scratch[0]})",
                        f"{scratch[0]}.sum(axis=0, out={out}.reshape({o}, {c * kh * kw}))"]

    def vjp(self, node, h):
        g, x = node.inputs[:2]
        stride, padding = node.attrs["stride"], node.attrs["padding"]
        # <h, dw(g, x)> = <conv2d(x, h), g>: differentiate that instead
        shared = [None] if node.attrs.get("columns") else []  # no gradient to the columns
        return [conv2d(x, h, stride=stride, padding=padding),
                conv2d_grad_input(g, h, stride, padding, x.shape[2:])] + shared


class Im2Col(Op):
    """The windows of NCHW ``x`` laid out as columns, (batch, C * kh * kw, OH * OW): what a
    conv2d multiplies by its filters, and what its filter gradient multiplies by the output's
    gradient. Each of those ops lays the columns out for itself; where both read the same
    input, the cse pass makes the columns a node of their own that both read
    (``sharing_columns``), so a training step copies the windows once, not twice."""

    name = "im2col"
    fresh = True
    differentiable = False

    def infer(self, inputs, attrs):
        (x,) = inputs
        (kh, kw), out = attrs["kernel"], output_size(
            image_size(x, "an input"), attrs["kernel"], attrs["stride"], attrs["padding"])
        return (x.shape[0], x.shape[1] * kh * kw, out[0] * out[1]), x.dtype

    def evaluate(self, node, args):
        (x,) = args
        out = output_size(x.shape[2:], node.attrs["kernel"], node.attrs["stride"],
                           node.attrs["padding"])
        xp, cols = pad_array(x, node.attrs["padding"]), np.empty(
            (x.shape[0],) + node.shape[1:], dtype=node.dtype)
        for i, j, window in window_positions(out, node.attrs["kernel"], node.attrs["stride"]):
            cols[:, :, i * out[1] + j] = xp[window].reshape(x.shape[0], -1)
        return cols

    def storage(self, node):
        return storage_with(*padded_scratch(node.inputs[0], node.attrs["padding"]))

    def emit(self, node, args, e):
        out, scratch = given_arrays(node, e)
        where = {"cols": e.target(node)} if out is None else \
            {"into": out, "padded": scratch[0] if scratch else None}
        x, a = node.inputs[0], node.attrs
        size = output_size(spatial(x.shape), a["kernel"], a["stride"], a["padding"])
        return im2col_code(args[0], x, a["kernel"], a["stride"], a["padding"], size, e,
                            **where)[0]


def _without_columns(inputs, attrs):
    """The inputs of a conv2d or conv2d_grad_weight without the shared columns, if it reads
    them (``attrs["columns"]``): its own inputs, as declared."""
    return inputs[:-1] if attrs.get("columns") else inputs


def sharing_columns(node: Node) -> Node:
    """A conv2d or conv2d_grad_weight reading the columns of its input, ``im2col(x)``, as a
    last input instead of laying them out itself."""
    cols = make("im2col", (columns_input(node),), kernel=columns_kernel(node),
                stride=node.attrs["stride"], padding=node.attrs["padding"])
    return make(node.op.name, node.inputs + (cols,), **node.attrs, columns=True)


def columns_input(node: Node) -> Node:
    """The input whose windows a conv2d or conv2d_grad_weight lays out as columns."""
    return node.inputs[0] if node.op.name == "conv2d" else node.inputs[1]


def columns_kernel(node: Node) -> Pair:
    """The (kh, kw) window of a conv2d or conv2d_grad_weight."""
    return tuple(node.inputs[1].shape[2:] if node.op.name == "conv2d" else node.attrs["kernel"])


def conv2d(x: Node, w: Node, b: Node | None = None, stride: int | Pair = 1,
           padding: int | Pair = 0) -> Node:
    """2-D convolution (cross-correlation) of NCHW images ``x`` with filters ``w`` of shape
    (out_channels, in_channels, kh, kw), plus ``b`` of shape (out_channels,) if given.

    ``stride`` and ``padding`` (zeros on each side) are ints or (height, width) pairs. The
    output is (batch, out_channels, (H + 2 padding - kh) // stride + 1, ...); the batch may be
    a named dimension, the other dimensions must be numbers.
    """
    inputs = (x, w) if b is None else (x, w, b)
    return make("conv2d", inputs, stride=as_pair(stride, "stride", 1),
                padding=as_pair(padding, "padding", 0))


def conv2d_grad_input(g: Node, w: Node, stride: Pair, padding: Pair, size: Pair) -> Node:
    """The input gradient of a conv2d whose input had height and width ``size``."""
    return make("conv2d_grad_input", (g, w), stride=stride, padding=padding, size=tuple(size))


def conv2d_grad_weight(g: Node, x: Node, kernel: Pair, stride: Pair, padding: Pair) -> Node:
    """The filter gradient of a conv2d with ``kernel``-sized filters over input ``x``."""
    return make("conv2d_grad_weight", (g, x), kernel=tuple(kernel), stride=stride,
                padding=padding)
