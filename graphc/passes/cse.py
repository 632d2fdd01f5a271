"""Common-subexpression elimination: two nodes of the same op, attributes and inputs are one."""

from __future__ import annotations

from graphc.ir.node import Node
from graphc.passes.graph import Graph, rewrite


def _key(node: Node):
    if not node.inputs or node.op.name == "assign":
        return None
    try:
        attrs = tuple(sorted(node.attrs.items()))
        hash(attrs)
    except TypeError:
        return None
    return node.op.name, tuple(x.id for x in node.inputs), attrs, node.dtype.str


def cse(graph: Graph) -> Graph:
    """Replace each node by the first equal node seen (same op, attrs and inputs)."""
    seen: dict[object, Node] = {}

    def local(node: Node, original: Node) -> Node | None:
        key = _key(node)
        if key is None:
            return None
        first = seen.setdefault(key, node)
        return None if first is node else first

    return rewrite(graph, local)
