"""Common-subexpression elimination: two nodes of the same op, attributes and inputs are one;
and the windows a convolution and its filter gradient both lay out become one node first."""

from __future__ import annotations

from collections import Counter

from graphc.ir.graph import Graph
from graphc.ir.node import Node
from graphc.ops.conv import columns_input, columns_kernel, sharing_columns
from graphc.passes.rewriting import replacing, rewrite


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
    """Replace each node by the first equal node seen (same op, attrs and inputs), after
    making the columns that convolutions lay out for themselves a shared node."""
    graph = share_columns(graph)
    seen: dict[object, Node] = {}

    def local(node: Node, original: Node) -> Node | None:
        key = _key(node)
        if key is None:
            return None
        first = seen.setdefault(key, node)
        return None if first is node else first

    return rewrite(graph, local)


#: Ops that lay out the windows of an input as im2col columns inside their own code.
COLUMN_OPS = ("conv2d", "conv2d_grad_weight")


def _columns_key(node: Node):
    return (columns_input(node).id, columns_kernel(node), node.attrs["stride"],
            node.attrs["padding"])


def share_columns(graph: Graph) -> Graph:
    """A conv2d and its filter gradient both copy the windows of the same input into columns
    (im2col), the largest copies of a CNN's step. Where two or more such ops read the same
    input with the same geometry, each reads one ``im2col`` node instead, which the merge of
    equal nodes then makes one: the windows are copied once per step, at the price of keeping
    the columns from the forward pass to the backward one."""
    users = Counter(_columns_key(n) for n in graph.nodes()
                    if n.op.name in COLUMN_OPS and not n.attrs.get("columns"))

    def local(node: Node, original: Node) -> Node | None:
        if original.op.name not in COLUMN_OPS or original.attrs.get("columns") or \
                users[_columns_key(original)] < 2:
            return None
        return replacing(node, sharing_columns(node))

    return rewrite(graph, local) if any(n > 1 for n in users.values()) else graph
