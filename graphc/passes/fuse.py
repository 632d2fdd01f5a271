"""Elementwise fusion: an elementwise node read only by another elementwise node (or by an
in-place update) is substituted into that node's SymPy expression, so a chain such as
``relu(x @ W + b)`` after the product is one NumPy statement and one array."""

from __future__ import annotations

import sympy as sp

from graphc.ir.graph import Graph, consumers
from graphc.ir.node import Node
from graphc.ops.elementwise import arg, faithful
from graphc.ops.unevaluated import substitute
from graphc.passes.rewriting import clone, rewrite

FUSIBLE = ("elementwise", "assign")


def _offset(node: Node) -> int:
    """Index of the input that the expression's first argument x0 stands for."""
    return 1 if node.op.name == "assign" else 0


def fuse_elementwise(graph: Graph) -> Graph:
    """Fold each single-use elementwise input into its elementwise consumer."""
    uses = {k: len(v) for k, v in consumers(graph.nodes()).items()}
    roots = {o.id for o in graph.roots}

    def fusible(original: Node, node: Node) -> bool:
        return (original.op.name == "elementwise" and uses.get(original.id) == 1
                and original.id not in roots and original.role == node.role)

    def local(node: Node, original: Node) -> Node | None:
        if node.op.name not in FUSIBLE:
            return None
        k = _offset(node)
        fold = [fusible(x, node) for x in original.inputs[k:]]
        return merge(node, fold) if any(fold) else None

    return rewrite(graph, local)


def merge(node: Node, fold: list[bool]) -> Node:
    """``node`` with the inputs marked in ``fold`` substituted into its expression, each where
    SymPy's evaluation of the result keeps every operand and partial sub-expression
    (``faithful``: exp of log(x) is not x for NumPy, e - e is NaN where e overflowed); the
    others stay inputs."""
    merged = _compose(node, fold)
    if merged is None:
        chosen = [False] * len(fold)
        for i in (i for i, f in enumerate(fold) if f):
            chosen[i] = True
            if _compose(node, chosen) is None:
                chosen[i] = False
        merged = _compose(node, chosen) if any(chosen) else None
    if merged is None:
        return node
    inputs, expr = merged
    return clone(node, inputs, attrs={**node.attrs, "expr": expr})


def _compose(node: Node, fold: list[bool]) -> tuple[tuple[Node, ...], sp.Basic] | None:
    """The inputs and expression of ``node`` with the marked inputs substituted, or None
    where that would change a value."""
    k = _offset(node)
    inputs: list[Node] = list(node.inputs[:k])
    index: dict[int, sp.Symbol] = {}

    def symbol_for(x: Node) -> sp.Symbol:
        if x.id not in index:
            index[x.id] = arg(len(inputs) - k)
            inputs.append(x)
        return index[x.id]

    replace = {}
    # unevaluated, so that faithful sees every operand (an inner x0/x1 of one array twice)
    for i, (x, f) in enumerate(zip(node.inputs[k:], fold)):
        if f:
            inner = {arg(j): symbol_for(y) for j, y in enumerate(x.inputs)}
            replace[arg(i)] = substitute(x.attrs["expr"], inner)
        else:
            replace[arg(i)] = symbol_for(x)
    expr = faithful(substitute(node.attrs["expr"], replace))
    return None if expr is None else (tuple(inputs), expr)
