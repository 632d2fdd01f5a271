"""The unit passes work on: a program's outputs and its effects (in-place updates), and the
helper that rebuilds a graph bottom-up with local rewrites."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from graphc.ir.graph import topological_order
from graphc.ir.node import Node


@dataclass(frozen=True)
class Graph:
    """What a program computes: ``outputs`` it returns and ``effects`` it performs."""

    outputs: tuple[Node, ...]
    effects: tuple[Node, ...] = ()

    @property
    def roots(self) -> tuple[Node, ...]:
        return self.outputs + self.effects

    def nodes(self) -> list[Node]:
        """Every node the roots depend on, in topological order (dead code is never here)."""
        return topological_order(self.roots)


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
