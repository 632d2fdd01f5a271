"""Convolution and pooling over NCHW images, with their gradients as graph ops.

``conv2d`` is computed by im2col: the kernel-sized windows of the padded input, a strided view
(``sliding_window_view``), are laid out as columns, so that the convolution is one batched
matrix product with the filters. Its gradients are ops of their own: ``conv2d_grad_weight``
(the same columns times the output gradient) and ``conv2d_grad_input`` (col2im: the product
of the filters with the output gradient, added back window offset by window offset). The
pools reduce over the stack of the ``kh * kw`` strided views that the window offsets select,
because NumPy reduces fast along an outer axis and slowly along a window's tiny inner axes;
their gradients add back offset by offset too, max pooling's to the first offset (in
row-major order) that holds the window's maximum.

Every generated statement loops, if at all, over the kernel's offsets only, never over pixels,
channels or examples. Each op's ``evaluate`` is written independently and plainly, with loops
over output positions, as the oracle the generated code is tested against.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.node import Array, Node, Storage
from graphc.ir.shapes import Shape, format_shape, sizes_of
from graphc.ops.reduce import reduce_sum
from graphc.ops.registry import Emitter, Op, float_dtype, make

Pair = tuple[int, int]


# --- arguments and shapes ----------------------------------------------------------------
def _pair(value: int | Pair, what: str, least: int) -> Pair:
    """An int or a pair of ints (height, width), each at least ``least``, as a pair."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else \
        tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 and v >= least for v in pair):
        raise ValueError(f"{what} must be an int >= {least} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _image_size(x: Node, what: str) -> Pair:
    """The (height, width) of an NCHW input, which must be numbers."""
    if x.ndim != 4:
        raise ShapeError(f"needs {what} of shape (batch, channels, height, width), got "
                         f"{format_shape(x.shape)}")
    h, w = x.shape[2:]
    if not (isinstance(h, int) and isinstance(w, int)):
        raise ShapeError(f"the height and width of {what} must be numbers, got "
                         f"{format_shape(x.shape)}")
    return h, w


def _numbers(dims: Shape) -> tuple[int, ...]:
    """Dims that ``infer`` checked are numbers (all of an image's or a filter's but the
    batch)."""
    sizes = sizes_of(dims)
    if sizes is None:
        raise AssertionError(f"expected numbers, got {format_shape(dims)}")
    return sizes


def _spatial(shape: Shape) -> Pair:
    """The (height, width) of an NCHW shape, which ``infer`` checked are numbers."""
    h, w = _numbers(shape[2:])
    return h, w


def _output_size(size: Pair, kernel: Pair, stride: Pair, padding: Pair) -> Pair:
    """How many windows fit along each axis (a window never hangs over the padded edge)."""
    for axis, n, k, p in zip(("height", "width"), size, kernel, padding):
        if k > n + 2 * p:
            raise ShapeError(f"a {kernel[0]}x{kernel[1]} kernel is larger than the input's "
                             f"{axis} {n}" + (f" padded to {n + 2 * p}" if p else ""))
    oh, ow = ((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding))
    return oh, ow


# --- pieces of generated code ------------------------------------------------------------
def _pad_code(x: str, padding: Pair) -> str:
    ph, pw = padding
    return f"np.pad({x}, ((0, 0), (0, 0), ({ph}, {ph}), ({pw}, {pw})))"


def _offset_slice(var: str, size: int, kernel: int, stride: int, out: int) -> str:
    """The ``out`` positions of kernel offset ``var`` along an axis of ``size``: ``ki::2``
    where that stops by itself, else ``ki:ki + 7:2``."""
    step = f":{stride}" if stride > 1 else ""
    if stride > 1 and len(range(0, size, stride)) == out == len(range(kernel - 1, size, stride)):
        return f"{var}:{step}"
    return f"{var}:{var} + {stride * (out - 1) + 1}{step}"


def _offset_view(x: str, ki: str, kj: str, size: Pair, kernel: Pair, stride: Pair,
                 out: Pair) -> str:
    """``x[:, :, ki:..., kj:...]``: the input entry at offset (ki, kj) of every window."""
    rows = _offset_slice(ki, size[0], kernel[0], stride[0], out[0])
    cols = _offset_slice(kj, size[1], kernel[1], stride[1], out[1])
    return f"{x}[:, :, {rows}, {cols}]"


def _tmp_after(e: Emitter, arg: str, suffix: str) -> str:
    """A fresh variable named after the array it derives from, where that is a name."""
    return e.tmp(f"{arg}_{suffix}" if arg.isidentifier() else suffix)


def _windows_code(x: str, node_x: Node, kernel: Pair, stride: Pair, padding: Pair,
                  e: Emitter, padded: str | None = None) -> tuple[list[str], str]:
    """Statements making ``windows``, a strided view (batch, C, OH, OW, kh, kw) of the input
    padded with zeros (into the array ``padded`` where one is given): returns them and the
    view's variable."""
    lines, src = [], x
    if padding != (0, 0) and padded is not None:
        (ph, pw), (h, w) = padding, _spatial(node_x.shape)
        src = padded
        lines += [f"{padded}.fill(0)", f"{padded}[:, :, {ph}:{ph + h}, {pw}:{pw + w}] = {x}"]
    elif padding != (0, 0):
        src = _tmp_after(e, x, "padded")
        lines.append(f"{src} = {_pad_code(x, padding)}")
    windows = _tmp_after(e, x, "windows")
    strided = "" if stride == (1, 1) else f"[:, :, ::{stride[0]}, ::{stride[1]}]"
    lines.append(f"{windows} = np.lib.stride_tricks.sliding_window_view({src}, {kernel}, "
                 f"axis=(2, 3)){strided}")
    return lines, windows


def _im2col_code(x: str, node_x: Node, kernel: Pair, stride: Pair, padding: Pair, out: Pair,
                 e: Emitter, cols: str | None = None, into: str | None = None,
                 padded: str | None = None) -> tuple[list[str], str]:
    """Statements that lay out the windows of x as (batch, C * kh * kw, OH * OW) columns:
    copied into the array ``into`` where one is given (the padded input into ``padded``),
    else in a new array, the variable ``cols`` (by default one named after x); returns them
    and the columns' variable."""
    lines, windows = _windows_code(x, node_x, kernel, stride, padding, e, padded)
    n, c = e.dim(node_x.shape[0]), node_x.shape[1]
    layout = f"{windows}.transpose(0, 1, 4, 5, 2, 3)"
    if into is not None:
        return lines + [f"np.copyto({into}.reshape({n}, {c}, {kernel[0]}, {kernel[1]}, "
                        f"{out[0]}, {out[1]}), {layout})"], into
    cols = cols or _tmp_after(e, x, "cols")
    return lines + [f"{cols} = {layout}.reshape({n}, {c * kernel[0] * kernel[1]}, "
                    f"{out[0] * out[1]})"], cols


def _padded_scratch(x: Node, padding: Pair) -> tuple:
    """The scratch entry of x padded with zeros, where there is padding."""
    if padding == (0, 0):
        return ()
    (n, c), (h, w), (ph, pw) = x.shape[:2], _spatial(x.shape), padding
    return (("padded", (n, c, h + 2 * ph, w + 2 * pw), x.dtype),)


def _stack_of_windows(x: str, size: Pair, kernel: Pair, stride: Pair, out: Pair,
                      e: Emitter) -> str:
    """``np.stack([...])``: one strided view per kernel offset, windows along axis 0."""
    ki, kj = e.tmp("ki"), e.tmp("kj")
    view = _offset_view(x, ki, kj, size, kernel, stride, out)
    return f"np.stack([{view} for {ki}, {kj} in np.ndindex{kernel}])"


def _storage(*arrays: tuple[str, Shape, np.dtype]) -> tuple[Storage, ...]:
    """An op's one way to write into given arrays: its output and these scratch arrays,
    each (variable name, shape, dtype)."""
    return (Storage(tuple(Array(*a) for a in arrays)),)


def _given(node: Node, e: Emitter) -> tuple[str | None, list[str] | None]:
    """The variables of the output and scratch arrays the memory plan gives ``node``, or
    (None, None) where its code allocates its own."""
    arrays = e.arrays(node)
    return (None, None) if arrays is None else (arrays.out, list(arrays.arrays))


def _zeros_code(node: Node, e: Emitter) -> str:
    return f"{e.target(node)} = np.zeros({e.shape(node.shape)}, dtype=np.{node.dtype.name})"


# --- the reference interpreter's helpers -------------------------------------------------
def _windows(out: Pair, kernel: Pair, stride: Pair) -> Iterator[tuple[int, int, tuple]]:
    """Each output position (i, j) with the index of its window in the (padded) input."""
    for i, j in np.ndindex(*out):
        rows = slice(i * stride[0], i * stride[0] + kernel[0])
        cols = slice(j * stride[1], j * stride[1] + kernel[1])
        yield i, j, (slice(None), slice(None), rows, cols)


def _pad(x: np.ndarray, padding: Pair) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))


def _crop(x: np.ndarray, padding: Pair) -> np.ndarray:
    (ph, pw), (h, w) = padding, x.shape[2:]
    return x[:, :, ph:h - ph, pw:w - pw]


# --- convolution -------------------------------------------------------------------------
class Conv2d(Op):
    """Cross-correlation of (N, C, H, W) images with (O, C, kh, kw) filters, plus a bias of
    shape (O,) when given as a third input: the convolution layer of deep learning."""

    name = "conv2d"
    fresh = True

    def infer(self, inputs, attrs):
        x, w, *bias = _without_columns(inputs, attrs)
        size = _image_size(x, "an input")
        if w.ndim != 4 or not all(isinstance(d, int) for d in w.shape):
            raise ShapeError(f"needs filters of shape (out_channels, in_channels, kh, kw), got "
                             f"{format_shape(w.shape)}")
        if x.shape[1] != w.shape[1]:
            raise ShapeError(f"the input {format_shape(x.shape)} has {x.shape[1]} channels but "
                             f"the filters {format_shape(w.shape)} expect {w.shape[1]}")
        if bias and bias[0].shape != w.shape[:1]:
            raise ShapeError(f"the bias must have shape ({w.shape[0]},), one entry per filter, "
                             f"got {format_shape(bias[0].shape)}")
        out = _output_size(size, w.shape[2:], attrs["stride"], attrs["padding"])
        return (x.shape[0], w.shape[0]) + out, float_dtype(x, w, *bias)

    def evaluate(self, node, args):
        x, w, *bias = _without_columns(args, node.attrs)  # the oracle lays out its own
        xp = _pad(x, node.attrs["padding"])
        out = np.zeros((x.shape[0],) + node.shape[1:], dtype=node.dtype)
        for i, j, window in _windows(node.shape[2:], w.shape[2:], node.attrs["stride"]):
            out[:, :, i, j] = np.tensordot(xp[window], w, axes=([1, 2, 3], [1, 2, 3]))
        if bias:
            out += bias[0][:, None, None]
        return out

    def storage(self, node):
        x, w = node.inputs[:2]
        if node.attrs.get("columns"):
            return _storage()
        return _storage(("cols", (x.shape[0], x.shape[1] * w.shape[2] * w.shape[3],
                                  node.shape[2] * node.shape[3]), x.dtype),
                        *_padded_scratch(x, node.attrs["padding"]))

    def emit(self, node, args, e):
        """The filters times the columns of the windows (laid out here unless shared), plus
        the bias; into a fresh array, or into the arrays the plan gives."""
        out, scratch = _given(node, e)
        x, w = node.inputs[:2]
        o, c, kh, kw = _numbers(w.shape)
        n, (oh, ow) = e.dim(node.shape[0]), _spatial(node.shape)
        lines: list[str]
        if node.attrs.get("columns"):
            lines, cols = [], args[-1]
        else:
            lines, cols = _im2col_code(args[0], x, (kh, kw), node.attrs["stride"],
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
        for i, j, window in _windows(g.shape[2:], w.shape[2:], node.attrs["stride"]):
            dxp[window] += np.tensordot(g[:, :, i, j], w, axes=(1, 0))
        return _crop(dxp, padding)

    def storage(self, node):
        g, w = node.inputs
        n, (c, kh, kw), (oh, ow) = g.shape[0], w.shape[1:], g.shape[2:]
        padded = () if node.attrs["padding"] == (0, 0) else \
            (("g_padded", self._padded(node), node.dtype),)
        return _storage(("g_cols", (n, c * kh * kw, oh * ow), node.dtype), *padded)

    @staticmethod
    def _padded(node: Node) -> tuple:
        """The shape of the gradient of the padded input."""
        return node.shape[:2] + tuple(s + 2 * p for s, p in zip(node.attrs["size"],
                                                                node.attrs["padding"]))

    def emit(self, node, args, e):
        """Each window's share ``w^T g``, then added back window offset by window offset;
        into fresh arrays, or into the arrays the plan gives."""
        out, scratch = _given(node, e)
        g, w = args
        o, c, kh, kw = _numbers(node.inputs[1].shape)
        stride, padding = node.attrs["stride"], node.attrs["padding"]
        n, (oh, ow) = e.dim(node.shape[0]), _spatial(node.inputs[0].shape)
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
        view = _offset_view(acc, ki, kj, padded[2:], (kh, kw), stride, (oh, ow))
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
        xp = _pad(x, node.attrs["padding"])
        dw = np.zeros(node.shape, dtype=node.dtype)
        for i, j, window in _windows(g.shape[2:], node.attrs["kernel"], node.attrs["stride"]):
            dw += np.tensordot(g[:, :, i, j], xp[window], axes=(0, 0))
        return dw

    def storage(self, node):
        g, x = node.inputs[:2]
        o, c, kh, kw = node.shape
        n, p = g.shape[0], g.shape[2] * g.shape[3]
        cols = () if node.attrs.get("columns") else \
            (("cols", (n, c * kh * kw, p), x.dtype),) + _padded_scratch(x, node.attrs["padding"])
        return _storage(("products", (n, o, c * kh * kw), node.dtype), *cols)

    def emit(self, node, args, e):
        """Per example, g times the columns of its windows, summed over the batch; into
        fresh arrays, or into the arrays the plan gives."""
        out, scratch = _given(node, e)
        g, x = node.inputs[:2]
        o, c, kh, kw = _numbers(node.shape)
        size, n = _spatial(g.shape), e.dim(g.shape[0])
        lines: list[str]
        if node.attrs.get("columns"):
            lines, cols = [], args[2]
        else:
            lines, cols = _im2col_code(args[1], x, (kh, kw), node.attrs["stride"],
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
        (kh, kw), out = attrs["kernel"], _output_size(
            _image_size(x, "an input"), attrs["kernel"], attrs["stride"], attrs["padding"])
        return (x.shape[0], x.shape[1] * kh * kw, out[0] * out[1]), x.dtype

    def evaluate(self, node, args):
        (x,) = args
        out = _output_size(x.shape[2:], node.attrs["kernel"], node.attrs["stride"],
                           node.attrs["padding"])
        xp, cols = _pad(x, node.attrs["padding"]), np.empty(
            (x.shape[0],) + node.shape[1:], dtype=node.dtype)
        for i, j, window in _windows(out, node.attrs["kernel"], node.attrs["stride"]):
            cols[:, :, i * out[1] + j] = xp[window].reshape(x.shape[0], -1)
        return cols

    def storage(self, node):
        return _storage(*_padded_scratch(node.inputs[0], node.attrs["padding"]))

    def emit(self, node, args, e):
        out, scratch = _given(node, e)
        where = {"cols": e.target(node)} if out is None else \
            {"into": out, "padded": scratch[0] if scratch else None}
        x, a = node.inputs[0], node.attrs
        size = _output_size(_spatial(x.shape), a["kernel"], a["stride"], a["padding"])
        return _im2col_code(args[0], x, a["kernel"], a["stride"], a["padding"], size, e,
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
    return make("conv2d", inputs, stride=_pair(stride, "stride", 1),
                padding=_pair(padding, "padding", 0))


def conv2d_grad_input(g: Node, w: Node, stride: Pair, padding: Pair, size: Pair) -> Node:
    """The input gradient of a conv2d whose input had height and width ``size``."""
    return make("conv2d_grad_input", (g, w), stride=stride, padding=padding, size=tuple(size))


def conv2d_grad_weight(g: Node, x: Node, kernel: Pair, stride: Pair, padding: Pair) -> Node:
    """The filter gradient of a conv2d with ``kernel``-sized filters over input ``x``."""
    return make("conv2d_grad_weight", (g, x), kernel=tuple(kernel), stride=stride,
                padding=padding)


# --- pooling -----------------------------------------------------------------------------
class Pool2d(Op):
    """A reduction over each (kh, kw) window, windows ``stride`` apart, channel by channel."""

    #: The NumPy reduction over a window: "max" or "mean".
    reduction: str

    def infer(self, inputs, attrs):
        (x,) = inputs
        out = _output_size(_image_size(x, "an input"), attrs["kernel"], attrs["stride"], (0, 0))
        return x.shape[:2] + out, float_dtype(x)

    def emit(self, node, args, e):
        a = node.attrs
        stack = _stack_of_windows(args[0], node.inputs[0].shape[2:], a["kernel"], a["stride"],
                                  node.shape[2:], e)
        return f"{stack}.{self.reduction}(axis=0)"

    def evaluate(self, node, args):
        (x,) = args
        out = np.zeros((x.shape[0],) + node.shape[1:], dtype=node.dtype)
        for i, j, window in _windows(node.shape[2:], node.attrs["kernel"], node.attrs["stride"]):
            out[:, :, i, j] = getattr(np, self.reduction)(x[window], axis=(2, 3))
        return out


class MaxPool2d(Pool2d):
    """The largest entry of each window; its gradient goes to the window's first largest
    entry in row-major order, so ties are broken the same way at every run."""

    name = "max_pool2d"
    fresh = True
    reduction = "max"

    def storage(self, node):
        return _storage()

    def emit(self, node, args, e):
        """Where planned, a running maximum over the kernel's offsets, in the output's
        array: no stack of views."""
        out, _ = _given(node, e)
        if out is None:
            return super().emit(node, args, e)
        a, size, shape = node.attrs, node.inputs[0].shape[2:], node.shape[2:]
        ki, kj = e.tmp("ki"), e.tmp("kj")
        first = _offset_view(args[0], "0", "0", size, a["kernel"], a["stride"], shape)
        view = _offset_view(args[0], ki, kj, size, a["kernel"], a["stride"], shape)
        return [f"np.copyto({out}, {first})",
                f"for {ki}, {kj} in list(np.ndindex{a['kernel']})[1:]:",
                f"    np.maximum({out}, {view}, out={out})"]

    def vjp(self, node, g):
        return [make("max_pool2d_grad", (g, node.inputs[0], node), **node.attrs)]


class AvgPool2d(Pool2d):
    """The mean of each window; its gradient shares g equally among the window's entries."""

    name = "avg_pool2d"
    fresh = True
    reduction = "mean"

    def vjp(self, node, g):
        return [make("avg_pool2d_grad", (g, node.inputs[0]), **node.attrs)]


class PoolGrad(Op):
    """The gradient of a pool with respect to its input ``x`` (the second input), from the
    output's gradient ``g``: added back, kernel offset by kernel offset, where windows read."""

    def infer(self, inputs, attrs):
        g, x = inputs[:2]
        return x.shape, float_dtype(g)

    def views(self, node: Node, grad: str, x: str, ki: str, kj: str) -> tuple[str, str]:
        """The entries at kernel offset (ki, kj) of every window: in the gradient being
        built, the array ``grad``, and in the pool's input ``x``."""
        a, size, out = node.attrs, _spatial(node.shape), _spatial(node.inputs[0].shape)
        grad_view, pooled = (_offset_view(array, ki, kj, size, a["kernel"], a["stride"], out)
                             for array in (grad, x))
        return grad_view, pooled


class MaxPool2dGrad(PoolGrad):
    """Inputs g, x and the pool's output y. At each offset, in row-major order, the windows
    whose maximum sits there and has not been met before take their gradient."""

    name = "max_pool2d_grad"
    fresh = True

    def label(self, node):
        return "max_pool2d'"

    def evaluate(self, node, args):
        g, x, _ = args
        (kh, kw), dx = node.attrs["kernel"], np.zeros(x.shape, dtype=node.dtype)
        n, c = np.indices(x.shape[:2])
        for i, j, window in _windows(g.shape[2:], (kh, kw), node.attrs["stride"]):
            first = x[window].reshape(x.shape[:2] + (kh * kw,)).argmax(axis=2)
            rows, cols = window[2].start + first // kw, window[3].start + first % kw
            dx[n, c, rows, cols] += g[:, :, i, j]
        return dx


    def storage(self, node):
        y = node.inputs[2].shape
        return _storage(("unrouted", y, np.dtype(bool)), ("first", y, np.dtype(bool)),
                        ("routed", y, node.dtype))

    def emit(self, node, args, e):
        """Into new arrays, or where planned into the arrays given: the gradient, the masks
        of windows not yet routed and of those whose maximum sits at this offset, and g
        times that mask."""
        g, x, y = args
        out, scratch = _given(node, e)
        ki, kj = e.tmp("ki"), e.tmp("kj")
        if out is None or scratch is None:
            unrouted, first = e.tmp("unrouted"), e.tmp("first")
            grad_view, x_view = self.views(node, e.target(node), x, ki, kj)
            return [_zeros_code(node, e),
                    f"{unrouted} = np.ones({e.shape(node.inputs[2].shape)}, dtype=bool)",
                    f"for {ki}, {kj} in np.ndindex{node.attrs['kernel']}:",
                    f"    {first} = {unrouted} & ({x_view} == {y})",
                    f"    {unrouted} &= ~{first}",
                    f"    {grad_view} += {g} * {first}"]
        unrouted, first, routed = scratch
        grad_view, x_view = self.views(node, out, x, ki, kj)
        return [f"{out}.fill(0)", f"{unrouted}.fill(True)",
                f"for {ki}, {kj} in np.ndindex{node.attrs['kernel']}:",
                f"    np.equal({x_view}, {y}, out={first})",
                f"    {first} &= {unrouted}",
                f"    {unrouted} ^= {first}",
                f"    np.multiply({g}, {first}, out={routed})",
                f"    {grad_view} += {routed}"]


class AvgPool2dGrad(PoolGrad):
    """Inputs g and x: each window's gradient, shared equally among its entries."""

    name = "avg_pool2d_grad"
    fresh = True

    def label(self, node):
        return "avg_pool2d'"

    def evaluate(self, node, args):
        g, x = args
        (kh, kw), dx = node.attrs["kernel"], np.zeros(x.shape, dtype=node.dtype)
        for i, j, window in _windows(g.shape[2:], (kh, kw), node.attrs["stride"]):
            dx[window] += g[:, :, i, j, None, None] / (kh * kw)
        return dx


    def storage(self, node):
        return _storage(("g_share", node.inputs[0].shape, node.dtype))

    def emit(self, node, args, e):
        """g shared among each window's entries, then added back offset by offset; into new
        arrays, or into the arrays the plan gives."""
        (kh, kw), (out, scratch) = node.attrs["kernel"], _given(node, e)
        ki, kj = e.tmp("ki"), e.tmp("kj")
        if out is None or scratch is None:
            share = e.tmp("g_share")
            lines = [f"{share} = {args[0]} / {kh * kw}", _zeros_code(node, e)]
            grad = e.target(node)
        else:
            (share,), grad = scratch, out
            lines = [f"np.divide({args[0]}, {kh * kw}, out={share})", f"{out}.fill(0)"]
        grad_view, _ = self.views(node, grad, args[1], ki, kj)
        return lines + [f"for {ki}, {kj} in np.ndindex({kh}, {kw}):",
                        f"    {grad_view} += {share}"]

    def vjp(self, node, h):
        return [make("avg_pool2d", (h,), **node.attrs), None]


def _pool(op: str, x: Node, kernel: int | Pair, stride: int | Pair | None) -> Node:
    kernel = _pair(kernel, "kernel", 1)
    return make(op, (x,), kernel=kernel,
                stride=kernel if stride is None else _pair(stride, "stride", 1))


def max_pool2d(x: Node, kernel: int | Pair = 2, stride: int | Pair | None = None) -> Node:
    """The maximum of each ``kernel``-sized window of NCHW ``x``, windows ``stride`` apart
    (default: ``kernel``, windows that tile the image). Ties send the gradient to the first
    maximal entry of a window."""
    return _pool("max_pool2d", x, kernel, stride)


def avg_pool2d(x: Node, kernel: int | Pair = 2, stride: int | Pair | None = None) -> Node:
    """The mean of each ``kernel``-sized window of NCHW ``x``, windows ``stride`` apart
    (default: ``kernel``)."""
    return _pool("avg_pool2d", x, kernel, stride)
