"""Stabilization: rewrites that make a graph's values and gradients finite where the math
is, at logits of +-1000 say. Each rewrite is a small named function; ``REWRITES`` lists them
in the order the pass tries them.

The forward graph is stabilized before autodiff (``gc.compile`` does this when it derives
gradients), so the gradients are derived from the stable form.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from graphc.ir.node import Node
from graphc.ops import functions as F
from graphc.ops.registry import make
from graphc.passes.fuse import merge
from graphc.passes.graph import Graph, clone, rewrite

_u = sp.Wild("u")

#: How many levels of elementwise inputs a pattern may span (log(1 + exp(u)) spans three).
LOOK_THROUGH = 4


def log_of_sigmoid(expr: sp.Basic) -> sp.Basic:
    """log(sigmoid(u)) -> -softplus(-u) and log(1 - sigmoid(u)) -> -softplus(u)."""
    expr = expr.replace(sp.log(F.sigmoid(_u)), -F.softplus(-_u))
    return expr.replace(sp.log(1 - F.sigmoid(_u)), -F.softplus(_u))


def log_one_plus_exp(expr: sp.Basic) -> sp.Basic:
    """log(1 + exp(u)) -> softplus(u), which never overflows."""
    return expr.replace(sp.log(1 + sp.exp(_u)), F.softplus(_u))


def reciprocal_of_one_plus_exp(expr: sp.Basic) -> sp.Basic:
    """1 / (1 + exp(-u)) -> sigmoid(u): the lecture's neuron, written out, made stable."""
    return expr.replace(1 / (1 + sp.exp(_u)), F.sigmoid(-_u))


#: Rewrites of elementwise SymPy expressions, tried in this order.
EXPRESSION_REWRITES: list[Callable[[sp.Basic], sp.Basic]] = [
    reciprocal_of_one_plus_exp, log_of_sigmoid, log_one_plus_exp,
]


def stable_expression(node: Node) -> Node | None:
    """An elementwise node with its elementwise inputs looked through and the expression
    rewritten, where a rewrite fires; None where none does."""
    if node.op.name != "elementwise":
        return None
    wide = node
    for _ in range(LOOK_THROUGH):
        fold = [x.op.name == "elementwise" for x in wide.inputs]
        if not any(fold):
            break
        wide = merge(wide, fold)
    expr = wide.attrs["expr"]
    for fn in EXPRESSION_REWRITES:
        expr = fn(expr)
    if expr == wide.attrs["expr"]:
        return None
    return clone(wide, wide.inputs, attrs={**wide.attrs, "expr": expr})


def log_of_softmax(node: Node) -> Node | None:
    """log(softmax(x)) -> log_softmax(x): no log of an underflowed zero."""
    if node.op.name != "elementwise" or node.attrs["expr"] != sp.log(_arg0()):
        return None
    (x,) = node.inputs
    if x.op.name != "softmax":
        return None
    return _like(node, make("log_softmax", x.inputs, axis=x.attrs["axis"]))


def cross_entropy_of_log_softmax(node: Node) -> Node | None:
    """-mean(take(log_softmax(s), labels)) -> softmax_cross_entropy(s, labels), whose
    gradient is the fused (softmax(s) - onehot) / B."""
    if node.op.name != "elementwise" or node.attrs["expr"] != -_arg0():
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
    return _like(node, make("softmax_cross_entropy", (ls.inputs[0], labels)))


def _arg0() -> sp.Symbol:
    from graphc.ops.elementwise import arg

    return arg(0)


def _like(old: Node, new: Node) -> Node:
    """``new`` carrying the name, line and role of the node it replaces."""
    new.name, new.location, new.role = old.name, old.location, old.role
    return new


#: Graph rewrites, tried in this order on every node.
REWRITES = [log_of_softmax, cross_entropy_of_log_softmax, stable_expression]


def stabilize(graph: Graph) -> Graph:
    """Apply the stabilizing rewrites everywhere they fire."""
    def local(node: Node, original: Node) -> Node | None:
        for fn in REWRITES:
            new = fn(node)
            if new is not None:
                node = new
        return node

    return rewrite(graph, local)
