"""The losses of the lecture material, composed from graph ops so that their gradients are
derived, not written by hand (softmax cross-entropy is an op of its own for its fused,
stable gradient)."""

from __future__ import annotations

from collections.abc import Iterable

from graphc.ir.node import Node
from graphc.ops import api as ops


def sigmoid_cross_entropy(logits: Node, targets: Node) -> Node:
    """Binary cross-entropy -[t log s(x) + (1 - t) log(1 - s(x))], mean over all entries.

    Written as softplus(x) - t * x, which equals it exactly and never takes log(0).
    """
    return ops.mean(ops.softplus(logits) - targets * logits)


def mse(prediction: Node, target: Node) -> Node:
    """The L2 loss: the mean of squared differences."""
    return ops.mean(ops.square(prediction - target))


def l1(prediction: Node, target: Node) -> Node:
    """The L1 loss: the mean of absolute differences (robust; its optimum is the median)."""
    return ops.mean(ops.abs(prediction - target))


def hinge(scores: Node, labels: Node, margin: float = 1.0) -> Node:
    """The multiclass SVM loss, mean over the batch of sum_{j != y} max(0, s_j - s_y + margin).

    The sum runs over all classes including j = y, whose term is exactly ``margin``, and
    ``margin`` is subtracted again, so no mask is needed.
    """
    correct = ops.reshape(ops.take(scores, labels), (scores.shape[0], 1))
    per_example = ops.sum(ops.relu(scores - correct + margin), axis=1)
    return ops.mean(per_example) - margin


def l2_penalty(params: Iterable[Node], lam: float) -> Node:
    """lam / 2 * the sum of squared entries of the parameters (weight decay)."""
    terms = [ops.sum(ops.square(p)) for p in params]
    if not terms:
        raise ValueError("l2_penalty needs at least one parameter")
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return (lam / 2) * total


def accuracy(scores: Node, labels: Node) -> Node:
    """The fraction of rows whose largest score is at the label (no gradient)."""
    hits = ops.greater_equal(ops.take(scores, labels), ops.max(scores, axis=1))
    return ops.mean(ops.where(hits, 1.0, 0.0))
