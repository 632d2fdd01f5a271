"""Graphs: what a program computes (``Graph``: outputs and effects), walking them
(topological order, consumers, the leaves outputs read), and the graph as networkx sees it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx

from graphc.ir.node import Node

LEAF_OPS = ("input", "param", "constant", "state")


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


def topological_order(outputs: Iterable[Node]) -> list[Node]:
    """Every node the outputs depend on, inputs before the nodes that read them.

    Iterative depth-first search, so a graph of thousands of layers needs no deep recursion;
    ties are broken by the order of inputs, so the same graph gives the same order.
    """
    order: list[Node] = []
    seen: set[int] = set()
    for root in outputs:
        if root.id in seen:
            continue
        stack: list[tuple[Node, int]] = [(root, 0)]
        seen.add(root.id)
        while stack:
            node, i = stack[-1]
            if i < len(node.inputs):
                stack[-1] = (node, i + 1)
                child = node.inputs[i]
                if child.id not in seen:
                    seen.add(child.id)
                    stack.append((child, 0))
            else:
                stack.pop()
                order.append(node)
    return order


def consumers(order: Iterable[Node]) -> dict[int, list[Node]]:
    """For each node id, the nodes (in ``order``) that read it, once per reading."""
    users: dict[int, list[Node]] = {}
    for node in order:
        for child in node.inputs:
            users.setdefault(child.id, []).append(node)
    return users


def leaves(outputs: Iterable[Node], op: str | None = None) -> list[Node]:
    """The leaves (inputs, params, constants, state) the outputs read, optionally of one op."""
    wanted = (op,) if op else LEAF_OPS
    return [n for n in topological_order(outputs) if n.op.name in wanted]


def display_name(node: Node, users: list[Node]) -> str | None:
    """The node's name, or the variable of the user's ``name = expr`` line when the node is
    the outermost op of ``expr`` (no reader of it was declared on the same line)."""
    if node.name:
        return node.name
    loc = node.location
    if loc is None or node.role != "forward" or loc.assigned_name is None:
        return None
    if any(u.location == loc for u in users):
        return None
    return loc.assigned_name


def to_networkx(outputs: Node | Iterable[Node]) -> nx.MultiDiGraph:
    """The graph the outputs depend on, as a networkx MultiDiGraph for analysing it with
    networkx's algorithms (paths, dominators, centrality...).

    One networkx node per graph node, keyed by its ``id``, with the attributes ``node`` (the
    graphc node itself), ``op``, ``label``, ``name``, ``shape``, ``dtype`` and ``role``; one
    edge from each input to each node reading it, with ``index``, the input's position (so
    ``x * x`` has two edges from x).
    """
    roots = [outputs] if isinstance(outputs, Node) else list(outputs)
    graph = nx.MultiDiGraph()
    for node in topological_order(roots):
        graph.add_node(node.id, node=node, op=node.op.name, label=node.label, name=node.name,
                       shape=node.shape, dtype=node.dtype, role=node.role)
        for index, x in enumerate(node.inputs):
            graph.add_edge(x.id, node.id, index=index)
    return graph
