"""What a figure shows, before any Graphviz: its boxes (vertices) and arrows (edges), each with
its text and the backward step at which its gradient is known.

Vertex ids come from positions in topological order (``n0``, ``n1``...), never from node
ids, which depend on how many nodes the process made before: the same graph always gives
the same figure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from graphc.feeds import leaf_name
from graphc.ir.node import Node
from graphc.render.collapse import Collapse, group_nodes
from graphc.render.labels import (
    LEAVES,
    SMALL_TENSOR,
    NumberFormat,
    assigned_names,
    expression_arguments,
    format_array,
    format_sum,
    node_name,
    objective_name,
    op_label,
    partial,
    shape_text,
)
from graphc.render.stages import Figure
from graphc.render.values import Annotations


@dataclass
class Vertex:
    """A box: ``kind`` picks its look (see ``graphc.render.style``); ``lines`` are
    ``(text, role)`` pairs, role "main", "sub" or "title"; ``members`` the nodes it draws."""

    id: str
    kind: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    members: tuple[int, ...] = ()


@dataclass
class Edge:
    """An arrow carrying a value (drawn above) and a gradient (below).

    ``step`` is the backward step after which the gradient is known (0: from the start, as
    the seed of an output); ``consumer`` the node the arrow feeds, whose step computes it.
    ``backward`` marks an arrow out of a node autodiff made, whose value is a gradient;
    ``argument`` names the argument the arrow is where its consumer is labelled with an
    expression over unnamed arguments (``x1`` in ``relu(x0 + x1)``), or, in a graph of
    numbers, the variable the user assigned the op's result to (``q`` of ``q = x + y``).
    """

    tail: str
    head: str
    value: str | None = None
    grad: str | None = None
    step: int = 0
    consumer: int | None = None
    backward: bool = False
    argument: str | None = None


@dataclass
class Scene:
    """A whole figure; ``scalar`` is True for a lecture graph of numbers (circles for ops)."""

    vertices: list[Vertex]
    edges: list[Edge]
    scalar: bool


def backward_steps(nodes: Sequence[Node], grads: dict[int, np.ndarray]) -> list[Node]:
    """The op nodes backpropagation steps through, in its order (reverse topological)."""
    return [n for n in reversed(nodes) if n.inputs and n.op.differentiable and n.id in grads]


def _readers(fig: Figure) -> dict[int, list[tuple[Node | None, int]]]:
    """For each node, the (consumer, input index) pairs that read it; an output's terminal
    arrow is the pair (None, k) for the k-th terminal."""
    readers: dict[int, list[tuple[Node | None, int]]] = defaultdict(list)
    for v in fig.nodes:
        for i, u in enumerate(v.inputs):
            readers[u.id].append((v, i))
    for k, t in enumerate(fig.terminals):
        readers[t.node.id].append((None, k))
    return readers


def fanned_consumers(fig: Figure) -> list[Node]:
    """The consumers of every value read more than once: where gradients add up."""
    out: dict[int, Node] = {}
    for readers in _readers(fig).values():
        if len(readers) > 1:
            out.update((v.id, v) for v, _ in readers if v is not None)
    return list(out.values())


def build_scene(fig: Figure, notes: Annotations | None, digits: NumberFormat = None,
                collapse: Collapse = None) -> Scene:
    """The vertices and edges of ``fig``, with values and gradients from ``notes``."""
    return _SceneBuilder(fig, notes, digits, collapse).build()


class _SceneBuilder:
    def __init__(self, fig: Figure, notes: Annotations | None, digits: NumberFormat,
                 collapse: Collapse) -> None:
        self.fig = fig
        self.notes = notes
        self.digits = digits
        self.names = assigned_names(fig.nodes)
        self.scalar = all(n.shape == () for n in fig.nodes)
        self.groups = group_nodes(fig.nodes, collapse)
        self.position = {n.id: k for k, n in enumerate(fig.nodes)}
        grads = notes.grads if notes else {}
        self.step_of = {n.id: k + 1 for k, n in enumerate(backward_steps(fig.nodes, grads))}
        self.vertices: list[Vertex] = []
        self.edges: list[Edge] = []
        self.group_ids: dict[str, str] = {}

    def build(self) -> Scene:
        for node in self.fig.nodes:
            self._add_vertex(node)
        for k, t in enumerate(self.fig.terminals):
            self.vertices.append(self._terminal(k, t.node, t.wrt))
        for u_id, readers in _readers(self.fig).items():
            self._add_edges(self._node(u_id), readers)
        return Scene(self.vertices, self.edges, self.scalar)

    # --- vertices ----------------------------------------------------------------------
    def vertex_id(self, node: Node) -> str:
        group = self.groups.get(node.id)
        return self.group_ids[group] if group else f"n{self.position[node.id]}"

    def _node(self, node_id: int) -> Node:
        return self.fig.nodes[self.position[node_id]]

    def _add_vertex(self, node: Node) -> None:
        group = self.groups.get(node.id)
        if group is None:
            self.vertices.append(Vertex(self.vertex_id(node), *self._describe(node),
                                        members=(node.id,)))
            return
        if group not in self.group_ids:
            self.group_ids[group] = f"g{len(self.group_ids)}"
            self.vertices.append(Vertex(self.group_ids[group], "group"))
        vertex = next(v for v in self.vertices if v.id == self.group_ids[group])
        vertex.members += (node.id,)
        vertex.lines = self._group_lines(group, [self._node(i) for i in vertex.members])

    def _describe(self, node: Node) -> tuple[str, list[tuple[str, str]]]:
        name = node_name(node, self.names)
        shape = [] if self.scalar else [(shape_text(node), "sub")]
        if node.op.name == "constant":
            value = format_array(node.array, self.digits)
            if self.scalar or node.array.size <= SMALL_TENSOR:
                return "constant", [(value, "main")]
            return "constant", [("const", "main")] + shape
        if node.op.name in LEAVES:
            return node.op.name, [(name or node.op.name, "main")] + shape
        kind = "backward" if node.role == "backward" else "op"
        if name and not self.scalar:
            shape = [(f"{name}: {shape_text(node)}", "sub")]
        return kind, [(op_label(node, self.names), "main")] + shape

    def _group_lines(self, label: str, members: list[Node]) -> list[tuple[str, str]]:
        ops: list[str] = []
        for n in members:
            op = op_label(n, self.names) if n.inputs else None
            if op and (not ops or ops[-1] != op):
                ops.append(op)
        params = [leaf_name(n) for n in members if n.op.name == "param"]
        lines = [(label, "title"), (" → ".join(ops[:5]) + (" …" if len(ops) > 5 else ""), "sub")]
        if params:
            lines.append((", ".join(params), "sub"))
        return lines + [(shape_text(members[-1]), "sub")]

    def _terminal(self, k: int, node: Node, wrt: Node | None) -> Vertex:
        if wrt is None:
            return Vertex(f"t{k}", "output", [(self._output_name(node), "main")])
        of = node_name(wrt, self.names) or "x"
        of_what = objective_name(self.fig.outputs, self.names)
        return Vertex(f"t{k}", "gradient", [(partial(of_what, of), "main")])

    def _output_name(self, node: Node) -> str:
        outputs = [t.node for t in self.fig.terminals if t.wrt is None]
        fallback = "out" if len(outputs) == 1 else f"out{outputs.index(node)}"
        return node_name(node, self.names) or fallback

    # --- edges -------------------------------------------------------------------------
    def _add_edges(self, u: Node, readers: list[tuple[Node | None, int]]) -> None:
        tail = self.vertex_id(u)
        value = self._value(u)
        backward = u.role == "backward"
        arrows: list[tuple[Node | None, int, str]] = []
        seen: set[str] = set()
        for v, i in readers:
            head = f"t{i}" if v is None else self.vertex_id(v)
            if head == tail or (self.groups and head in seen):
                continue  # inside a collapsed group, or a second arrow into the same box
            seen.add(head)
            arrows.append((v, i, head))
        parts = [self._part(u, v, i) for v, i, _ in arrows]
        known = [p for p in parts if p is not None]
        name = self._variable(u)
        if (len(arrows) > 1 and not self.groups and len(known) == len(parts)
                and self.notes is not None):
            total = self.notes.grads[u.id]
            point = f"b{self.position[u.id]}"
            self.vertices.append(Vertex(point, "branch", members=(u.id,)))
            steps = [self._step(v) for v, _, _ in arrows]
            self.edges.append(Edge(tail, point, value, format_sum(total, known, self.digits),
                                   max(steps), None, backward, name))
            tail, name = point, None
        for (v, i, head), part in zip(arrows, parts):
            grad = None if part is None else format_array(part, self.digits, multiline=True)
            to_gradient = v is None and self.fig.terminals[i].wrt is not None
            named = None if v is None and not to_gradient else name  # an output box names it
            self.edges.append(Edge(tail, head, value, grad, self._step(v),
                                   v.id if v is not None else None, backward or to_gradient,
                                   self._argument(v, i, u) or named))

    def _variable(self, u: Node) -> str | None:
        """The user's variable for an op's result in a graph of numbers (``q`` of
        ``q = x + y``), which the arrows out of it carry, as the lecture slides write it;
        a leaf's box already says its name, a tensor op's box says it beside its shape."""
        if not self.scalar or not u.inputs:
            return None
        return node_name(u, self.names)

    def _value(self, u: Node) -> str | None:
        if self.notes is None:
            return None
        return format_array(self.notes.values[u.id], self.digits, multiline=True)

    def _part(self, u: Node, v: Node | None, i: int) -> np.ndarray | None:
        """The gradient flowing back along one arrow out of ``u`` (None: no gradients)."""
        notes = self.notes
        if notes is None or u.id not in notes.grads:
            return None
        if v is None:
            return notes.seeds.get(u.id, np.zeros_like(notes.grads[u.id]))
        if self.groups:
            return notes.grads[u.id]  # an arrow into a box may stand for several readers
        part = notes.branch(v, i)
        return np.zeros_like(notes.grads[u.id]) if part is None else part

    def _step(self, v: Node | None) -> int:
        return 0 if v is None else self.step_of.get(v.id, 0)

    def _argument(self, v: Node | None, i: int, u: Node) -> str | None:
        """The argument name an arrow into an expression label needs (None: the label
        calls the argument by the name of the node it comes from)."""
        shown = expression_arguments(v, self.names) if v is not None else None
        if not shown or shown[i] == node_name(u, self.names):
            return None
        return shown[i]
