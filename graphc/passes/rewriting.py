"""How passes rewrite a graph: the helper that rebuilds it bottom-up with local rewrites, and
the small functions a rewrite makes its replacement nodes with."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from graphc.ir.graph import Graph
from graphc.ir.node import Node

#: ``local(node, original)``: a replacement for ``node`` (the rewritten copy of ``original``,
#: reading already rewritten inputs), or None to keep it.
Rewrite = Callable[[Node, Node], "Node | None"]


def clone(node: Node, inputs: tuple[Node, ...], **changes) -> Node:
    """A copy of ``node`` reading other inputs (and other attrs, with ``attrs=``)."""
    return Node(node.op, inputs, changes.get("attrs", node.attrs), node.shape, node.dtype,
                name=node.name, location=node.location, role=node.role, value=node.value)


def replacing(old: Node, new: Node) -> Node:
    """``new``, a node a rewrite just made, carrying the name, line and role of ``old``."""
    new.name, new.location, new.role = old.name, old.location, old.role
    return new


def apply_rewrites(graph: Graph, rewrites: Sequence[Callable[[Node], Node | None]]) -> Graph:
    """Try each named rewrite, in order, on every node; each returns a replacement or None.

    The form of a pass made of small rewrites (PyTensor's style): a pass is its list.
    """
    def local(node: Node, original: Node) -> Node:
        for fn in rewrites:
            new = fn(node)
            if new is not None:
                node = new
        return node

    return rewrite(graph, local)


def rewrite(graph: Graph, local: Rewrite) -> Graph:
    """Rebuild ``graph`` bottom-up, applying ``local`` to every node."""
    mapped: dict[int, Node] = {}
    for node in graph.nodes():
        new_inputs = tuple(mapped[x.id] for x in node.inputs)
        current = node if new_inputs == node.inputs else clone(node, new_inputs)
        replacement = local(current, node)
        mapped[node.id] = current if replacement is None else replacement
    return Graph(tuple(mapped[o.id] for o in graph.outputs),
                 tuple(mapped[e.id] for e in graph.effects))
