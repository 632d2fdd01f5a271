"""Simplification: SymPy algebra on fused elementwise expressions, and tensor identities
at graph level. Each rewrite is a small named function; ``REWRITES`` lists them in order.

x*1, x+0 and --x never reach a graph: SymPy's own evaluation removes them when an
elementwise node is built. What is left for this pass is algebra across fused ops
(g*(1/s)*s*(1-s) is g*(1-s)) and identities between tensor ops.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from graphc.ir.graph import Graph
from graphc.ir.node import Node
from graphc.ops import functions as F
from graphc.ops.api import multiply
from graphc.ops.elementwise import keeps_domain
from graphc.ops.leaves import constant
from graphc.ops.registry import make
from graphc.passes.rewriting import apply_rewrites, clone, replacing

#: Expressions larger than this (in SymPy operations) are left as they are: simplify's cost
#: grows quickly with size, and compile time must stay linear in the number of layers.
MAX_OPS = 40


#: Functions SymPy's simplify handles quickly; trigonometric and hyperbolic ones can take
#: seconds, so expressions holding them are left as they are.
CHEAP_FUNCTIONS = (sp.exp, sp.log) + tuple(
    r.function for r in F.RECORDS.values() if r.cheap and r.function is not None)


@lru_cache(maxsize=4096)
def _simplest(expr: sp.Basic) -> sp.Basic:
    """SymPy's simplification of ``expr`` where it is smaller and holds for NumPy's real
    arithmetic, else ``expr`` itself. SymPy simplifies for finite complex numbers, so
    exp(2 log(x)) becomes x**2 and (x**2 - 1)/(x + 1) becomes x - 1; for x < 0 and x = -1
    NumPy gives NaN there, and a rewrite that drops a partial sub-expression is refused
    (``keeps_domain``).

    Cached: the layers of a deep network repeat the same expressions over their own inputs.
    """
    if sp.count_ops(expr) > MAX_OPS or expr.has(sp.Piecewise) or any(
            not isinstance(f, CHEAP_FUNCTIONS) for f in expr.atoms(sp.Function)):
        return expr
    simpler = sp.simplify(expr)
    if sp.count_ops(simpler) >= sp.count_ops(expr) or not keeps_domain(expr, simpler):
        return expr
    return simpler


def simplify_expression(node: Node) -> Node | None:
    """An elementwise expression in its simplest SymPy form."""
    if node.op.name != "elementwise":
        return None
    expr = _simplest(node.attrs["expr"])
    if expr == node.attrs["expr"] or not expr.free_symbols:
        return None
    return clone(node, node.inputs, attrs={**node.attrs, "expr": expr})


def transpose_of_transpose(node: Node) -> Node | None:
    """transpose(transpose(x)) -> x, or the one transpose that composes both."""
    if node.op.name != "transpose" or node.inputs[0].op.name != "transpose":
        return None
    inner = node.inputs[0]
    axes = tuple(inner.attrs["axes"][a] for a in node.attrs["axes"])
    x = inner.inputs[0]
    if axes == tuple(range(x.ndim)):
        return x
    return replacing(node, make("transpose", (x,), axes=axes))


def sum_of_broadcast(node: Node) -> Node | None:
    """sum(broadcast(g) over the axes it was broadcast along) -> g * (number of entries)."""
    if node.op.name != "sum" or node.inputs[0].op.name != "expand":
        return None
    expand = node.inputs[0]
    g, like = expand.inputs
    axes = expand.attrs["axes"]
    if not axes or node.attrs["axes"] != axes or node.attrs["keepdims"]:
        return None
    counts = [like.shape[a] for a in axes]
    if not all(isinstance(c, int) for c in counts):
        return None
    return replacing(node, multiply(g, float(np.prod(counts))))


def fold_constants(node: Node) -> Node | None:
    """An op whose inputs are all constants becomes the constant it computes (by the op's
    reference evaluation), so no step recomputes it."""
    if not node.inputs or not all(x.op.name == "constant" for x in node.inputs):
        return None
    value = node.op.evaluate(node, [x.array for x in node.inputs])
    return replacing(node, constant(np.asarray(value, dtype=node.dtype)))


#: Graph rewrites, tried in this order on every node.
REWRITES = [fold_constants, transpose_of_transpose, sum_of_broadcast, simplify_expression]


def simplify(graph: Graph) -> Graph:
    """Apply the simplifying rewrites everywhere they fire."""
    return apply_rewrites(graph, REWRITES)
