"""The windows of NCHW images, shared by convolution (graphc.ops.conv) and pooling
(graphc.ops.pool): their arguments and shapes, the pieces of generated code that lay windows
out as strided views or im2col columns, and the plain loops the reference evaluations use.

Every generated statement loops, if at all, over the kernel's offsets only, never over pixels,
channels or examples.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.node import Array, Node, Storage
from graphc.ir.shapes import Shape, format_shape, sizes_of
from graphc.ops.registry import Emitter

Pair = tuple[int, int]


# --- arguments and shapes ----------------------------------------------------------------
def as_pair(value: int | Pair, what: str, least: int) -> Pair:
    """An int or a pair of ints (height, width), each at least ``least``, as a pair."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else \
        tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 and v >= least for v in pair):
        raise ValueError(f"{what} must be an int >= {least} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def image_size(x: Node, what: str) -> Pair:
    """The (height, width) of an NCHW input, which must be numbers."""
    if x.ndim != 4:
        raise ShapeError(f"needs {what} of shape (batch, channels, height, width), got "
                         f"{format_shape(x.shape)}")
    h, w = x.shape[2:]
    if not (isinstance(h, int) and isinstance(w, int)):
        raise ShapeError(f"the height and width of {what} must be numbers, got "
                         f"{format_shape(x.shape)}")
    return h, w


def int_dims(dims: Shape) -> tuple[int, ...]:
    """Dims that ``infer`` checked are numbers (all of an image's or a filter's but the
    batch)."""
    sizes = sizes_of(dims)
    if sizes is None:
        raise AssertionError(f"expected numbers, got {format_shape(dims)}")
    return sizes


def spatial(shape: Shape) -> Pair:
    """The (height, width) of an NCHW shape, which ``infer`` checked are numbers."""
    h, w = int_dims(shape[2:])
    return h, w


def output_size(size: Pair, kernel: Pair, stride: Pair, padding: Pair) -> Pair:
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


def offset_view(x: str, ki: str, kj: str, size: Pair, kernel: Pair, stride: Pair,
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
        (ph, pw), (h, w) = padding, spatial(node_x.shape)
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


def im2col_code(x: str, node_x: Node, kernel: Pair, stride: Pair, padding: Pair, out: Pair,
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


def padded_scratch(x: Node, padding: Pair) -> tuple:
    """The scratch entry of x padded with zeros, where there is padding."""
    if padding == (0, 0):
        return ()
    (n, c), (h, w), (ph, pw) = x.shape[:2], spatial(x.shape), padding
    return (("padded", (n, c, h + 2 * ph, w + 2 * pw), x.dtype),)


def stack_of_windows(x: str, size: Pair, kernel: Pair, stride: Pair, out: Pair,
                      e: Emitter) -> str:
    """``np.stack([...])``: one strided view per kernel offset, windows along axis 0."""
    ki, kj = e.tmp("ki"), e.tmp("kj")
    view = offset_view(x, ki, kj, size, kernel, stride, out)
    return f"np.stack([{view} for {ki}, {kj} in np.ndindex{kernel}])"


def storage_with(*arrays: tuple[str, Shape, np.dtype]) -> tuple[Storage, ...]:
    """An op's one way to write into given arrays: its output and these scratch arrays,
    each (variable name, shape, dtype)."""
    return (Storage(tuple(Array(*a) for a in arrays)),)


def given_arrays(node: Node, e: Emitter) -> tuple[str | None, list[str] | None]:
    """The variables of the output and scratch arrays the memory plan gives ``node``, or
    (None, None) where its code allocates its own."""
    arrays = e.arrays(node)
    return (None, None) if arrays is None else (arrays.out, list(arrays.arrays))


def zeros_code(node: Node, e: Emitter) -> str:
    return f"{e.target(node)} = np.zeros({e.shape(node.shape)}, dtype=np.{node.dtype.name})"


# --- the reference interpreter's helpers -------------------------------------------------
def window_positions(out: Pair, kernel: Pair, stride: Pair) -> Iterator[tuple[int, int, tuple]]:
    """Each output position (i, j) with the index of its window in the (padded) input."""
    for i, j in np.ndindex(*out):
        rows = slice(i * stride[0], i * stride[0] + kernel[0])
        cols = slice(j * stride[1], j * stride[1] + kernel[1])
        yield i, j, (slice(None), slice(None), rows, cols)


def pad_array(x: np.ndarray, padding: Pair) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))


def crop_array(x: np.ndarray, padding: Pair) -> np.ndarray:
    (ph, pw), (h, w) = padding, x.shape[2:]
    return x[:, :, ph:h - ph, pw:w - pw]
