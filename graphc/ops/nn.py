"""Ops of neural-network outputs: softmax, log-softmax, logsumexp, label selection, one-hot,
and the softmax cross-entropy loss with its fused gradient (p - onehot) / B."""

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
    The stabilize pass gives it a third input, log_softmax(logits), which forward and
    backward then share: the loss is -mean(log_p[rows, labels]) and the gradient
    (exp(log_p) - onehot) / B, so nothing is computed twice. The loss is a function of the
    logits alone: the log-probabilities carry no gradient of their own.
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
        if len(args) == 3:
            return f"-{args[2]}[{rows}, {args[1]}].sum() / {batch}"
        s, labels = args
        z = e.tmp("shifted")
        return [f"{z} = {s} - {s}.max(axis=1, keepdims=True)",
                f"{e.target(node)} = (np.log(np.exp({z}).sum(axis=1)) - "
                f"{z}[{rows}, {labels}]).sum() / {batch}"]

    def vjp(self, node, g):

        logits, labels = node.inputs[:2]
        onehot = make("one_hot", (labels,), depth=logits.shape[1], dtype=logits.dtype)
        gs, ps, ys, bs = sp.symbols("g p y B", real=True)
        if len(node.inputs) == 3:  # p = exp(log_p), from the shared log-probabilities
            p, probabilities = node.inputs[2], sp.exp(ps)
        else:
            p, probabilities = make("softmax", (logits,), axis=1), ps
        grad = from_expr("softmax CE'", gs * (probabilities - ys) / bs,
                         {gs: g, ps: p, ys: onehot, bs: size(logits, (0,))})
        return [grad, None] + [None] * (len(node.inputs) - 2)


def sharing_log_probabilities(node: Node) -> Node:
    """The softmax cross-entropy ``node`` reading log_softmax(logits) as a third input."""
    logits, labels = node.inputs[:2]
    log_p = make("log_softmax", (logits,), axis=1).named("log_p")
    return make("softmax_cross_entropy", (logits, labels, log_p))
