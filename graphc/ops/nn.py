"""Ops of neural-network outputs: softmax, log-softmax, logsumexp, label selection, one-hot,
and the softmax cross-entropy loss with its fused gradient (p - onehot) / B, computed with
no one-hot matrix."""

from __future__ import annotations

import numpy as np
import sympy as sp

from graphc.errors import ShapeError
from graphc.ir.node import Array, Node, Storage
from graphc.ir.shapes import format_shape
from graphc.ops.elementwise import from_expr
from graphc.ops.reduce import expand, reduce_sum, size
from graphc.ops.registry import Op, float_dtype, make


def _kd(axis):
    return f"axis={axis}, keepdims=True"


def _reduced(node: Node) -> tuple:
    """The node's shape with its softmax axis kept as 1: a per-row maximum or sum."""
    return tuple(1 if i == node.attrs["axis"] else d for i, d in enumerate(node.shape))


class Softmax(Op):
    name = "softmax"
    fresh = True

    def infer(self, inputs, attrs):
        return inputs[0].shape, float_dtype(inputs[0])

    def evaluate(self, node, args):
        z = np.exp(args[0] - args[0].max(axis=node.attrs["axis"], keepdims=True))
        return z / z.sum(axis=node.attrs["axis"], keepdims=True)

    def storage(self, node):
        return (Storage((Array("row", _reduced(node), node.dtype),)),)

    def emit(self, node, args, e):
        t, a, arrays = e.target(node), node.attrs["axis"], e.arrays(node)
        if arrays is None:
            return [f"{t} = np.exp({args[0]} - {args[0]}.max({_kd(a)}))",
                    f"{t} /= {t}.sum({_kd(a)})"]
        out, (row,) = arrays.out, arrays.arrays
        # reductions as methods: np.max and np.sum cost microseconds more per call
        return [f"# {t} = softmax({args[0]}, axis={a}), the row maximum subtracted first",
                f"{args[0]}.max({_kd(a)}, out={row})",
                f"np.subtract({args[0]}, {row}, out={out})",
                f"np.exp({out}, out={out})",
                f"{out}.sum({_kd(a)}, out={row})",
                f"{out} /= {row}"]

    def vjp(self, node, g):

        a = node.attrs["axis"]
        gs, ys, ss = sp.symbols("g y s", real=True)
        gy = from_expr("*", gs * ys, {gs: g, ys: node})
        return [from_expr("softmax'", ys * (gs - ss),
                          {ys: node, gs: g, ss: reduce_sum(gy, a, keepdims=True)})]


class LogSoftmax(Op):
    name = "log_softmax"
    fresh = True

    def infer(self, inputs, attrs):
        return inputs[0].shape, float_dtype(inputs[0])

    def evaluate(self, node, args):
        x, a = args[0], node.attrs["axis"]
        z = x - x.max(axis=a, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=a, keepdims=True))

    def storage(self, node):
        return (Storage((Array("row", _reduced(node), node.dtype),
                         Array("exps", node.shape, node.dtype))),)

    def emit(self, node, args, e):
        t, a, arrays = e.target(node), node.attrs["axis"], e.arrays(node)
        if arrays is None:
            return [f"{t} = {args[0]} - {args[0]}.max({_kd(a)})",
                    f"{t} -= np.log(np.exp({t}).sum({_kd(a)}))"]
        out, (row, exps) = arrays.out, arrays.arrays
        return [f"# {t} = {args[0]} - logsumexp({args[0]}, axis={a}), the row maximum "
                "subtracted first",
                f"{args[0]}.max({_kd(a)}, out={row})",
                f"np.subtract({args[0]}, {row}, out={out})",
                f"np.exp({out}, out={exps})",
                f"{exps}.sum({_kd(a)}, out={row})",
                f"{out} -= np.log({row}, out={row})"]

    def vjp(self, node, g):

        gs, ys, ss = sp.symbols("g y s", real=True)
        total = reduce_sum(g, node.attrs["axis"], keepdims=True)
        return [from_expr("log_softmax'", gs - sp.exp(ys) * ss, {gs: g, ys: node, ss: total})]


class LogSumExp(Op):
    name = "logsumexp"
    fresh = True

    def infer(self, inputs, attrs):
        (x,) = inputs
        a, keep = attrs["axis"], attrs["keepdims"]
        shape = tuple(1 if i == a else d for i, d in enumerate(x.shape)) if keep else \
            tuple(d for i, d in enumerate(x.shape) if i != a)
        return shape, float_dtype(x)

    def evaluate(self, node, args):
        x, a = args[0], node.attrs["axis"]
        m = x.max(axis=a, keepdims=True)
        out = np.log(np.exp(x - m).sum(axis=a, keepdims=True)) + m
        return out if node.attrs["keepdims"] else np.squeeze(out, axis=a)

    def emit(self, node, args, e):
        t, a = e.target(node), node.attrs["axis"]
        m = e.tmp(f"{t}_max")
        lines = [f"{m} = {args[0]}.max({_kd(a)})",
                 f"{t} = np.log(np.exp({args[0]} - {m}).sum({_kd(a)})) + {m}"]
        if not node.attrs["keepdims"]:
            lines.append(f"{t} = {t}.squeeze(axis={a})")
        return lines

    def vjp(self, node, g):

        x = node.inputs[0]
        axes = () if node.attrs["keepdims"] else (node.attrs["axis"],)
        gs, xs, ys = sp.symbols("g x y", real=True)
        return [from_expr("logsumexp'", gs * sp.exp(xs - ys),
                          {gs: expand(g, x, axes), xs: x, ys: expand(node, x, axes)})]


def _check_labels(x, labels, what):
    if labels.dtype.kind not in "iu":
        raise ShapeError(f"labels must be integers, got {labels.dtype} "
                         f"(declare them with gc.input(..., dtype='int64'))")
    if x.ndim != 2 or labels.shape != x.shape[:1]:
        raise ShapeError(f"{what} needs {x.ndim == 2 and 'scores' or 'a 2-D array'} of shape "
                         f"(batch, classes) and labels of shape (batch,), got "
                         f"{format_shape(x.shape)} and {format_shape(labels.shape)}")


class TakeLabels(Op):
    """``x[rows, labels]``: each row's entry at its label (the score of the true class)."""

    name = "take"
    fresh = True

    def class_labels(self, node):
        return node.inputs[1], node.inputs[0].shape[1]

    def infer(self, inputs, attrs):
        x, labels = inputs
        _check_labels(x, labels, "take")
        return labels.shape, x.dtype

    def evaluate(self, node, args):
        x, labels = args
        return x[np.arange(len(labels)), labels]

    def emit(self, node, args, e):
        return f"{args[0]}[np.arange({e.dim(node.shape[0])}), {args[1]}]"

    def vjp(self, node, g):
        return [make("scatter", (g, node.inputs[0], node.inputs[1])), None]


class ScatterLabels(Op):
    """Zeros shaped like x with g at each row's label: the gradient of ``take``."""

    name = "scatter"
    fresh = True

    def class_labels(self, node):
        return node.inputs[2], node.shape[1]

    def infer(self, inputs, attrs):
        g, like, labels = inputs
        return like.shape, g.dtype

    def evaluate(self, node, args):
        g, like, labels = args
        out = np.zeros(like.shape, dtype=node.dtype)
        out[np.arange(len(labels)), labels] = g
        return out

    def emit(self, node, args, e):
        t = e.target(node)
        return [f"{t} = np.zeros({e.shape(node.shape)}, dtype=np.{node.dtype.name})",
                f"{t}[np.arange({e.dim(node.shape[0])}), {args[2]}] = {args[0]}"]

    def vjp(self, node, g):
        return [make("take", (g, node.inputs[2])), None, None]


class OneHot(Op):
    name = "one_hot"
    fresh = True

    def class_labels(self, node):
        return node.inputs[0], node.attrs["depth"]
    differentiable = False

    def infer(self, inputs, attrs):
        (labels,) = inputs
        if labels.dtype.kind not in "iu":
            raise ShapeError(f"one_hot needs integer labels, got {labels.dtype}")
        return labels.shape + (attrs["depth"],), np.dtype(attrs["dtype"])

    def evaluate(self, node, args):
        return (args[0][..., None] == np.arange(node.attrs["depth"])).astype(node.dtype)

    def storage(self, node):
        return (Storage(),) if node.ndim == 2 else ()

    def emit(self, node, args, e):
        arrays = e.arrays(node)
        if arrays is None:
            return f"np.eye({node.attrs['depth']}, dtype=np.{node.dtype.name})[{args[0]}]"
        # zeros, then a one at each row's label: faster at small batches than np.equal
        return [f"{arrays.out}.fill(0)",
                f"{arrays.out}[np.arange({e.dim(node.shape[0])}), {args[0]}] = 1"]


class SoftmaxCrossEntropy(Op):
    """Mean over the batch of -log softmax(logits)[label], for integer labels.

    As declared, the node reads (logits, labels): the figure of the loss is one node, its
    code logsumexp minus the true score, its gradient the fused (softmax - onehot) / B.
    The stabilize pass gives it two more inputs, log_p = log_softmax(logits) and
    log_p_labels = log_p[rows, labels], which forward and backward then share: the loss is
    -mean(log_p_labels) and the gradient (``softmax_cross_entropy_grad``) exp(log_p) with
    expm1(log_p_labels) at the labels, divided by B, so nothing is computed twice and no
    one-hot matrix is made. The loss is a function of the logits alone: the shared inputs
    carry no gradient of their own.
    """

    name = "softmax_cross_entropy"
    fresh = True

    def class_labels(self, node):
        return node.inputs[1], node.inputs[0].shape[1]

    def label(self, node):
        return "softmax CE"

    def infer(self, inputs, attrs):
        logits, labels = inputs[:2]
        _check_labels(logits, labels, "softmax_cross_entropy")
        return (), float_dtype(logits)

    def evaluate(self, node, args):
        s, labels = args[:2]  # from the logits, independently of a shared log_softmax
        z = s - s.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return np.asarray((lse - z[np.arange(len(labels)), labels]).mean(), dtype=node.dtype)

    def emit(self, node, args, e):
        # the mean as sum / batch: ndarray.mean costs several microseconds more per call
        batch = e.dim(node.inputs[0].shape[0])
        rows = f"np.arange({batch})"
        if len(args) == 4:
            return f"-{args[3]}.sum() / {batch}"
        if len(args) == 3:
            return f"-{args[2]}[{rows}, {args[1]}].sum() / {batch}"
        s, labels = args
        z = e.tmp("shifted")
        return [f"{z} = {s} - {s}.max(axis=1, keepdims=True)",
                f"{e.target(node)} = (np.log(np.exp({z}).sum(axis=1)) - "
                f"{z}[{rows}, {labels}]).sum() / {batch}"]

    def vjp(self, node, g):

        logits, labels = node.inputs[:2]
        # from the shared log-probabilities where the stabilize pass gave them, else its own
        log_p = node.inputs[2] if len(node.inputs) >= 3 else \
            make("log_softmax", (logits,), axis=1).named("log_p")
        taken = node.inputs[3] if len(node.inputs) == 4 else \
            make("take", (log_p, labels)).named("log_p_labels")
        grad = softmax_cross_entropy_grad(g, log_p, labels, taken, size(logits, (0,)))
        return [grad, None] + [None] * (len(node.inputs) - 2)


def _number(node: Node) -> float | None:
    """The value of a scalar constant node, None for any other node."""
    if node.op.name == "constant" and node.shape == ():
        return float(node.array)
    return None


def softmax_cross_entropy_grad(g: Node, log_p: Node, labels: Node, taken: Node,
                               n: Node) -> Node:
    """``g * (exp(log_p) - onehot(labels)) / n``, reading ``taken = log_p[rows, labels]``:
    a scalar constant among g and n is folded into the node's ``scale``, so that the step
    neither binds nor converts it."""
    gv, nv = _number(g), _number(n)
    scale = (1.0 if gv is None else gv) / (1.0 if nv is None else nv)
    scalars = tuple(x for x, v in ((g, gv), (n, nv)) if v is None)
    return make("softmax_cross_entropy_grad", (log_p, labels, taken) + scalars, scale=scale,
                has_g=gv is None, has_n=nv is None)


def _number_code(value: float, dtype: np.dtype) -> str:
    """A factor as a short literal: 1 as ``1``, a float32 learning rate as ``0.01``."""
    if value == 1:
        return "1"
    short = dtype.type(value)
    return repr(float(str(short))) if float(short) == value else repr(value)


class SoftmaxCrossEntropyGrad(Op):
    """The gradient of the softmax cross-entropy with respect to its logits,
    ``scale * g * (exp(log_p) - onehot(labels)) / n``, from the log-probabilities, the labels,
    the log-probabilities at the labels (``log_p[rows, labels]``, which the loss reads too),
    then the upstream gradient g (a scalar, which carries the learning rate where it is
    folded into the seed) if ``has_g`` and the batch size n if ``has_n``: a constant g or n
    is folded into ``scale`` (``softmax_cross_entropy_grad``). Its code has no one-hot
    matrix: ``exp`` into the output, ``expm1`` of the taken values written at the labels
    (one indexed assignment: faster than the fill, assignment and subtraction of a one-hot
    matrix, and than ``out[rows, labels] -= 1``, which indexes twice), and one multiply by
    the factor."""

    name = "softmax_cross_entropy_grad"
    fresh = True

    def class_labels(self, node):
        return node.inputs[1], node.shape[1]

    def label(self, node):
        return "softmax CE'"

    def infer(self, inputs, attrs):
        log_p, labels, taken, *scalars = inputs
        _check_labels(log_p, labels, "softmax_cross_entropy_grad")
        if taken.shape != labels.shape:
            raise ShapeError("softmax_cross_entropy_grad needs log_p[rows, labels] of shape "
                             f"{format_shape(labels.shape)}, got {format_shape(taken.shape)}")
        if len(scalars) != attrs["has_g"] + attrs["has_n"] or any(x.shape for x in scalars):
            raise ShapeError("softmax_cross_entropy_grad needs a scalar for each of g and n "
                             "that is not folded into its scale")
        return log_p.shape, float_dtype(log_p)

    @staticmethod
    def _factors(node: Node, args: list) -> tuple[object | None, object | None]:
        """The arguments of g and n among ``args`` (None where folded into the scale)."""
        rest = iter(args[3:])
        g = next(rest) if node.attrs["has_g"] else None
        n = next(rest) if node.attrs["has_n"] else None
        return g, n

    def evaluate(self, node, args):
        log_p, labels = args[:2]  # independently of the taken values
        g, n = self._factors(node, args)
        onehot = (labels[:, None] == np.arange(log_p.shape[1])).astype(node.dtype)
        out = node.attrs["scale"] * (np.exp(log_p) - onehot)
        if g is not None:
            out = out * g
        if n is not None:
            out = out / n
        return np.asarray(out, dtype=node.dtype)

    def storage(self, node):
        return (Storage(overwrites=frozenset({0})),)

    def emit(self, node, args, e):
        log_p, labels, taken = args[:3]
        g, n = self._factors(node, args)
        factor = _number_code(node.attrs["scale"], node.dtype)
        if g is not None:
            factor = str(g) if factor == "1" else f"{factor}*{g}"
        if n is not None:
            factor = f"{factor}/{n}"
        rows = f"np.arange({e.dim(node.shape[0])})"
        arrays = e.arrays(node)
        if arrays is None:
            t = e.target(node)
            return [f"{t} = np.exp({log_p})",
                    f"{t}[{rows}, {labels}] = np.expm1({taken})",
                    f"{t} *= {factor}"]
        out = arrays.out
        times = factor[1:] if factor.startswith("1/") else f"*{factor}"
        return [f"# {e.target(node)} = (np.exp({log_p}) - one_hot({labels})){times}, "
                f"with no one-hot matrix: exp({taken}) - 1 written at the labels",
                f"np.exp({log_p}, out={out})",
                f"{out}[{rows}, {labels}] = np.expm1({taken})",
                f"np.multiply({out}, {factor}, out={out})"]

    def vjp(self, node, gout):

        # as a function of log_p alone: the taken values are log_p's, whose gradient the
        # derivative with respect to log_p already carries in full
        log_p, labels = node.inputs[:2]
        g, n = self._factors(node, list(node.inputs))
        onehot = make("one_hot", (labels,), depth=log_p.shape[1], dtype=log_p.dtype)
        hs, gs, ps, ys, ns = sp.symbols("h g p y n", real=True)
        c = node.attrs["scale"]
        gx = gs if g is not None else 1
        nx = ns if n is not None else 1
        symbols = {hs: gout, ps: log_p}
        if g is not None:
            symbols[gs] = g
        if n is not None:
            symbols[ns] = n
        d_log_p = from_expr("softmax CE''", c * hs * gx * sp.exp(ps) / nx, symbols)
        grads: list[Node | None] = [d_log_p, None, None]
        if g is not None:
            grads.append(reduce_sum(from_expr("softmax CE''", c * hs * (sp.exp(ps) - ys) / nx,
                                              {**symbols, ys: onehot})))
        if n is not None:
            grads.append(None)
        return grads


def sharing_log_probabilities(node: Node) -> Node:
    """The softmax cross-entropy ``node`` reading log_p = log_softmax(logits) and
    log_p[rows, labels] as its third and fourth inputs."""
    logits, labels = node.inputs[:2]
    log_p = make("log_softmax", (logits,), axis=1).named("log_p")
    taken = make("take", (log_p, labels)).named("log_p_labels")
    return make("softmax_cross_entropy", (logits, labels, log_p, taken))
