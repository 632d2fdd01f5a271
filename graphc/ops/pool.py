"""Max and average pooling over NCHW images, with their gradients as graph ops.

The pools reduce over the stack of the ``kh * kw`` strided views that the window offsets
select, because NumPy reduces fast along an outer axis and slowly along a window's tiny inner
axes; their gradients add back offset by offset, max pooling's to the first offset (in
row-major order) that holds the window's maximum. Each op's ``evaluate`` loops plainly over
output positions, as the oracle the generated code is tested against.
"""

from __future__ import annotations

import numpy as np

from graphc.ir.node import Node
from graphc.ops.registry import Op, float_dtype, make
from graphc.ops.windows import (
    Pair,
    as_pair,
    given_arrays,
    image_size,
    offset_view,
    output_size,
    spatial,
    stack_of_windows,
    storage_with,
    window_positions,
    zeros_code,
)


# --- pooling -----------------------------------------------------------------------------
class Pool2d(Op):
    """A reduction over each (kh, kw) window, windows ``stride`` apart, channel by channel."""

    #: The NumPy reduction over a window: "max" or "mean".
    reduction: str

    def infer(self, inputs, attrs):
        (x,) = inputs
        out = output_size(image_size(x, "an input"), attrs["kernel"], attrs["stride"], (0, 0))
        return x.shape[:2] + out, float_dtype(x)

    def emit(self, node, args, e):
        a = node.attrs
        stack = stack_of_windows(args[0], node.inputs[0].shape[2:], a["kernel"], a["stride"],
                                  node.shape[2:], e)
        return f"{stack}.{self.reduction}(axis=0)"

    def evaluate(self, node, args):
        (x,) = args
        out = np.zeros((x.shape[0],) + node.shape[1:], dtype=node.dtype)
        kernel, stride = node.attrs["kernel"], node.attrs["stride"]
        for i, j, window in window_positions(node.shape[2:], kernel, stride):
            out[:, :, i, j] = getattr(np, self.reduction)(x[window], axis=(2, 3))
        return out


class MaxPool2d(Pool2d):
    """The largest entry of each window; its gradient goes to the window's first largest
    entry in row-major order, so ties are broken the same way at every run."""

    name = "max_pool2d"
    fresh = True
    reduction = "max"

    def storage(self, node):
        return storage_with()

    def emit(self, node, args, e):
        """Where planned, a running maximum over the kernel's offsets, in the output's
        array: no stack of views."""
        out, _ = given_arrays(node, e)
        if out is None:
            return super().emit(node, args, e)
        a, size, shape = node.attrs, node.inputs[0].shape[2:], node.shape[2:]
        ki, kj = e.tmp("ki"), e.tmp("kj")
        first = offset_view(args[0], "0", "0", size, a["kernel"], a["stride"], shape)
        view = offset_view(args[0], ki, kj, size, a["kernel"], a["stride"], shape)
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
        a, size, out = node.attrs, spatial(node.shape), spatial(node.inputs[0].shape)
        grad_view, pooled = (offset_view(array, ki, kj, size, a["kernel"], a["stride"], out)
                             for array in (grad, x))
        return grad_view, pooled


class MaxPool2dGrad(PoolGrad):
    """Inputs g, x and the pool's output y. At each offset, in row-major order, the windows
    whose maximum sits there and has not been met before take their gradient; every other
    entry keeps 0, as NumPy's ``dx[argmax] += g`` leaves it, even where g is inf or NaN
    (``g * mask`` would make inf * 0 = NaN there). Planned, the selection is bitwise: g's
    bits where the mask holds, 0 (+0.0) elsewhere, in two calls, written straight into the
    gradient where windows do not overlap (LeNet's 2x2 pools), else added up."""

    name = "max_pool2d_grad"
    fresh = True

    def label(self, node):
        return "max_pool2d'"

    def evaluate(self, node, args):
        g, x, _ = args
        (kh, kw), dx = node.attrs["kernel"], np.zeros(x.shape, dtype=node.dtype)
        n, c = np.indices(x.shape[:2])
        for i, j, window in window_positions(g.shape[2:], (kh, kw), node.attrs["stride"]):
            first = x[window].reshape(x.shape[:2] + (kh * kw,)).argmax(axis=2)
            rows, cols = window[2].start + first // kw, window[3].start + first % kw
            dx[n, c, rows, cols] += g[:, :, i, j]
        return dx


    def storage(self, node):
        y = node.inputs[2].shape
        arrays = [("unrouted", y, np.dtype(bool)), ("first", y, np.dtype(bool)),
                  ("bits", y, _bits(node))]
        if not _disjoint(node):
            arrays.append(("routed", y, node.dtype))
        return storage_with(*arrays)

    def emit(self, node, args, e):
        """Into new arrays, or where planned into the arrays given: the gradient, the masks
        of windows not yet routed and of those whose maximum sits at this offset, the
        mask's bits, and (where windows overlap) the gradient routed at this offset."""
        g, x, y = args
        out, scratch = given_arrays(node, e)
        ki, kj = e.tmp("ki"), e.tmp("kj")
        if out is None or scratch is None:
            unrouted, first = e.tmp("unrouted"), e.tmp("first")
            grad_view, x_view = self.views(node, e.target(node), x, ki, kj)
            return [zeros_code(node, e),
                    f"{unrouted} = np.ones({e.shape(node.inputs[2].shape)}, dtype=bool)",
                    f"for {ki}, {kj} in np.ndindex{node.attrs['kernel']}:",
                    f"    {first} = {unrouted} & ({x_view} == {y})",
                    f"    {unrouted} &= ~{first}",
                    f"    {grad_view} += np.where({first}, {g}, 0)"]
        unrouted, first, bits, *routed = scratch
        grad_view, x_view = self.views(node, out, x, ki, kj)
        ints = f"np.{_bits(node).name}"
        into = f"{routed[0]}.view({ints})" if routed else f"{grad_view}.view({ints})"
        return [f"{out}.fill(0)", f"{unrouted}.fill(True)",
                f"for {ki}, {kj} in np.ndindex{node.attrs['kernel']}:",
                f"    np.equal({x_view}, {y}, out={first})",
                f"    {first} &= {unrouted}",
                f"    {unrouted} ^= {first}",
                f"    # {g} where {first} holds, 0 elsewhere, bit for bit ({g} * {first} would "
                "make inf * 0 = NaN)",
                f"    np.subtract(0, {first}, out={bits})  # all bits set where it holds",
                f"    np.bitwise_and({g}.view({ints}), {bits}, out={into})",
                *([f"    {grad_view} += {routed[0]}"] if routed else [])]


def _disjoint(node: Node) -> bool:
    """Whether a pool's windows never overlap (stride at least the kernel, both ways)."""
    return all(s >= k for s, k in zip(node.attrs["stride"], node.attrs["kernel"]))


def _bits(node: Node) -> np.dtype:
    """The signed integers of the gradient's float size, to select its entries bitwise."""
    return np.dtype(f"i{node.dtype.itemsize}")


class AvgPool2dGrad(PoolGrad):
    """Inputs g and x: each window's gradient, shared equally among its entries."""

    name = "avg_pool2d_grad"
    fresh = True

    def label(self, node):
        return "avg_pool2d'"

    def evaluate(self, node, args):
        g, x = args
        (kh, kw), dx = node.attrs["kernel"], np.zeros(x.shape, dtype=node.dtype)
        for i, j, window in window_positions(g.shape[2:], (kh, kw), node.attrs["stride"]):
            dx[window] += g[:, :, i, j, None, None] / (kh * kw)
        return dx


    def storage(self, node):
        return storage_with(("g_share", node.inputs[0].shape, node.dtype))

    def emit(self, node, args, e):
        """g shared among each window's entries, then added back offset by offset; into new
        arrays, or into the arrays the plan gives."""
        (kh, kw), (out, scratch) = node.attrs["kernel"], given_arrays(node, e)
        ki, kj = e.tmp("ki"), e.tmp("kj")
        if out is None or scratch is None:
            share = e.tmp("g_share")
            lines = [f"{share} = {args[0]} / {kh * kw}", zeros_code(node, e)]
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
    kernel = as_pair(kernel, "kernel", 1)
    return make(op, (x,), kernel=kernel,
                stride=kernel if stride is None else as_pair(stride, "stride", 1))


def max_pool2d(x: Node, kernel: int | Pair = 2, stride: int | Pair | None = None) -> Node:
    """The maximum of each ``kernel``-sized window of NCHW ``x``, windows ``stride`` apart
    (default: ``kernel``, windows that tile the image). Ties send the gradient to the first
    maximal entry of a window."""
    return _pool("max_pool2d", x, kernel, stride)


def avg_pool2d(x: Node, kernel: int | Pair = 2, stride: int | Pair | None = None) -> Node:
    """The mean of each ``kernel``-sized window of NCHW ``x``, windows ``stride`` apart
    (default: ``kernel``)."""
    return _pool("avg_pool2d", x, kernel, stride)
