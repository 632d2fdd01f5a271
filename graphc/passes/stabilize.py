"""Stabilization: rewrites that make a graph's values and gradients finite where the math
is, at logits of +-1000 say. Each rewrite is a small named function; ``REWRITES`` lists them
in the order the pass tries them.

The forward graph is stabilized before autodiff (``gc.compile`` does this when it derives
gradients), so the gradients are derived from the stable form.
"""

from __future__ import annotations

import sympy as sp

from graphc.ir.graph import Graph
from graphc.ir.node import Node
from graphc.ops.elementwise import arg
from graphc.ops.nn import sharing_log_probabilities
from graphc.ops.registry import make
from graphc.ops.stable_forms import may_match, stable_form
from graphc.passes.fuse import merge
from graphc.passes.rewriting import apply_rewrites, clone, replacing

#: How many levels of elementwise inputs a pattern may span (log(1 + exp(u)) spans three).
LOOK_THROUGH = 4


def stable_expression(node: Node) -> Node | None:
    """An elementwise node with its elementwise inputs looked through and the expression
    rewritten, where a rewrite fires; None where none does."""
    if node.op.name != "elementwise" or not may_match(node.attrs["expr"]):
        return None
    wide = node
    for _ in range(LOOK_THROUGH):
        fold = [x.op.name == "elementwise" for x in wide.inputs]
        if not any(fold):
            break
        wide = merge(wide, fold)
    expr = stable_form(wide.attrs["expr"])
    if expr == wide.attrs["expr"]:
        return None
    label = type(expr).__name__ if isinstance(expr, sp.Function) else wide.attrs["label"]
    return clone(wide, wide.inputs, attrs={**wide.attrs, "expr": expr, "label": label})


def log_of_softmax(node: Node) -> Node | None:
    """log(softmax(x)) -> log_softmax(x): no log of an underflowed zero."""
    if node.op.name != "elementwise" or node.attrs["expr"] != sp.log(arg(0)):
        return None
    (x,) = node.inputs
    if x.op.name != "softmax":
        return None
    return replacing(node, make("log_softmax", x.inputs, axis=x.attrs["axis"]))


def cross_entropy_of_log_softmax(node: Node) -> Node | None:
    """-mean(take(log_softmax(s), labels)) -> softmax_cross_entropy(s, labels), whose
    gradient is the fused (softmax(s) - onehot) / B; it reads the log-softmax and the taken
    values it was written with, as ``shared_log_probabilities`` makes it do."""
    if node.op.name != "elementwise" or node.attrs["expr"] != -arg(0):
        return None
    (m,) = node.inputs
    if m.op.name != "mean" or m.attrs["axes"] != (0,):
        return None
    (t,) = m.inputs
    if t.op.name != "take" or t.inputs[0].op.name != "log_softmax":
        return None
    ls, labels = t.inputs[0], t.inputs[1]
    if ls.attrs["axis"] != 1:
        return None
    return replacing(node, make("softmax_cross_entropy", (ls.inputs[0], labels, ls, t)))


def shared_log_probabilities(node: Node) -> Node | None:
    """softmax_cross_entropy(s, labels) reads log_p = log_softmax(s) and log_p[rows, labels],
    which its gradient reads too: the loss is -mean(log_p[rows, labels]), the gradient
    (exp(log_p) - onehot) / B with expm1(log_p[rows, labels]) written at the labels (no
    one-hot matrix), and the row max, exponentials, sums and the indexing are computed once
    for both."""
    if node.op.name != "softmax_cross_entropy" or len(node.inputs) != 2:
        return None
    return replacing(node, sharing_log_probabilities(node))


#: Graph rewrites, tried in this order on every node.
REWRITES = [log_of_softmax, cross_entropy_of_log_softmax, shared_log_probabilities,
            stable_expression]


def stabilize(graph: Graph) -> Graph:
    """Apply the stabilizing rewrites everywhere they fire."""
    return apply_rewrites(graph, REWRITES)
