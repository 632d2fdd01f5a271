"""The flatten pass: an optimizer's per-parameter updates as one update of flat arrays.

A training step updates each parameter with the same few lines (Adam: m, v, then the
weight), so a network of four parameters runs the same NumPy calls four times over small
arrays, and at the sizes of most lectures' networks the calls, not the arithmetic, are the
cost. Where the updates of several parameters are the same expression over arrays of their
own and numbers they share, this pass makes them one update over ``flat`` nodes
(graphc.ops.flat), the multi-tensor update of PyTorch's foreach optimizers:

    m_W1 = 0.9*m_W1 + 0.1*d_W1;  m_b1 = 0.9*m_b1 + 0.1*d_b1;  ...
    ->  m_all = 0.9*m_all + 0.1*d_all      (m_all: m_W1, m_b1, ... side by side)

The program keeps the parameters and the state as views of the flat arrays, and the memory
plan has the gradients computed into views of theirs, so the update costs the calls of one
parameter's, for all of them. Values are unchanged: each entry is computed by the same
expression from the same entries.

The pass declares what it tracks: for each update, and each elementwise node an update
reads (a gradient plus its weight decay, ``d_W + 0.01*W``), its *key* (op, mode, expression,
dtype, and which inputs are numbers shared by the group: ``update_key``) and the parameter
it is for (``parameter_of``; an elementwise node is for its readers' parameter). A group is
flattened only where each of its array operands is, for every member alike, parameters or
state, computed values, or the members' results of another flattened group (Adam's weight
update reads the new m and v), and where only flattened groups read a member's result, and
read all of them. A leaf or value can be a view of one flat array only: where two groups
would make it a piece of two, the smaller group stays as it is (``_clash``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from graphc.ir.graph import Graph, consumers
from graphc.ir.node import Node
from graphc.ops.flat import HELD, flat
from graphc.ops.registry import make
from graphc.passes.rewriting import replacing


def flatten(graph: Graph) -> Graph:
    """Each group of two or more like updates made one update of flat arrays (see the
    module docstring); the graph as it is where no group qualifies."""
    order = graph.nodes()
    groups = _groups(order)
    users = consumers(order)
    while True:  # drop groups whose operands or readers need a member's own value
        valid = {id(g) for g in groups}
        kept = [g for g in groups if _flattenable(g, groups, valid, users)]
        if len(kept) == len(groups):
            clash = _clash(groups, valid)
            if clash is None:
                break
            kept.remove(clash)
        groups = kept
    if not groups:
        return graph
    return _rebuild(graph, groups)


class Key(NamedTuple):
    """What nodes must share to be one flat node: op, mode (an update's), expression and
    dtype, and for each input the id of the node (a number, shared by the group) or None
    (an array of the node's shape: a piece; an update's target is one)."""

    op: str
    mode: str | None
    expr: Any
    dtype: np.dtype
    operands: tuple[int | None, ...]


def update_key(node: Node) -> Key | None:
    """The ``Key`` of an update of an array leaf, or of a float elementwise node (the
    gradient plus weight decay an update reads), by pieces and numbers; None for others."""
    if node.op.name == "assign":
        target = node.inputs[0]
        if target.op.name not in HELD or target.shape == ():
            return None
        values, mode = node.inputs[1:], node.attrs["mode"]
    elif node.op.name == "elementwise" and node.shape and node.dtype.kind == "f":
        values, mode = node.inputs, None
    else:
        return None
    operands: list[int | None] = [None] * (len(node.inputs) - len(values))  # the target
    for v in values:
        if v.shape == ():
            operands.append(v.id)
        elif v.shape == node.shape and v.dtype == node.dtype:
            operands.append(None)
        else:
            return None
    return Key(node.op.name, mode, node.attrs["expr"], node.dtype, tuple(operands))


def parameter_of(node: Node) -> Node | None:
    """The parameter an update is for: its target, or the parameter its target state is
    kept for (``state``'s ``attrs["of"]``)."""
    target = node.inputs[0]
    return target if target.op.name == "param" else target.attrs.get("of")


@dataclass(eq=False)
class Group:
    """Like nodes to flatten together, ordered by the parameters they are for."""

    key: Key
    members: list[Node]

    def operands(self, k: int) -> list[Node]:
        """Each member's input ``k``."""
        return [m.inputs[k] for m in self.members]

    @property
    def pieces(self) -> list[int]:
        """The input positions that are arrays."""
        return [k for k, shared in enumerate(self.key.operands) if shared is None]


def _groups(order: Sequence[Node]) -> list[Group]:
    """The candidate groups, in the order of their first member: nodes with one key, two or
    more, each for a parameter of its own. An update is for its parameter (``parameter_of``);
    an elementwise node for the one parameter that the candidates reading it are for."""
    keys = {n.id: k for n in order if (k := update_key(n)) is not None}
    rank: dict[int, int] = {}  # node id -> the declaration order of its parameter
    for n in order:
        param = parameter_of(n) if n.id in keys and n.op.name == "assign" else None
        if param is not None:
            rank[n.id] = param.id
    users = consumers(order)
    for n in reversed(order):  # readers first: an elementwise node takes its readers' rank
        ranks = {rank.get(u.id) for u in users.get(n.id, [])}
        if n.id in keys and n.id not in rank and len(ranks) == 1:
            (only,) = ranks
            if only is not None:
                rank[n.id] = only
    by_key: dict[Key, list[Node]] = {}
    for n in order:
        if n.id in rank:
            by_key.setdefault(keys[n.id], []).append(n)
    groups = []
    for key, members in by_key.items():
        if len(members) >= 2 and len({rank[m.id] for m in members}) == len(members):
            groups.append(Group(key, sorted(members, key=lambda m: rank[m.id])))
    return groups


def _source(operand: list[Node], groups: Sequence[Group], valid: set[int]) -> \
        Group | str | None:
    """Where a piece operand of a group comes from: an earlier valid group whose members'
    results it is, member for member; "leaves" (parameters or state, each once); "computed"
    (values, each once, none an update); None where it is none of these."""
    if len({x.id for x in operand}) != len(operand):
        return None
    for g in groups:
        if id(g) in valid and [m.id for m in g.members] == [x.id for x in operand]:
            return g
    if all(x.op.name in HELD for x in operand):
        return "leaves"
    if all(x.inputs and x.op.updates(x) is None for x in operand):
        return "computed"
    return None


def _flattenable(group: Group, groups: Sequence[Group], valid: set[int],
                 users: dict[int, list[Node]]) -> bool:
    """Whether every piece operand has a source, and every reader of a member's result is
    a valid group that reads the whole of this group's result (as one of its pieces)."""
    if any(_source(group.operands(k), groups, valid) is None for k in group.pieces):
        return False
    readers = {id(n): g for g in groups if id(g) in valid for n in g.members}
    for m in group.members:
        for u in users.get(m.id, []):
            reader = readers.get(id(u))
            if reader is None or not any(_source(reader.operands(k), groups, valid) is group
                                         for k in reader.pieces if u.inputs[k] is m):
                return False
    return True


def _clash(groups: Sequence[Group], valid: set[int]) -> Group | None:
    """A group to drop because a leaf or a value it would make a piece of one flat array
    is a piece of another too (it can be a view of one array, not of two): of the two, the
    one with fewer members. None where there is no such clash."""
    owner: dict[int, tuple[tuple[int, ...], Group]] = {}
    for g in groups:
        for k in g.pieces:
            operand = g.operands(k)
            if isinstance(_source(operand, groups, valid), Group):
                continue
            ids = tuple(x.id for x in operand)
            for i in ids:
                other_ids, other = owner.setdefault(i, (ids, g))
                if other_ids != ids:
                    return g if len(g.members) <= len(other.members) else other
    return None


def _rebuild(graph: Graph, groups: list[Group]) -> Graph:
    """The graph with each group's members replaced by one update of flat arrays."""
    valid = {id(g) for g in groups}
    made: dict[int, Node] = {}  # group -> its flat update
    flats: dict[tuple[int, ...], Node] = {}
    replaced: dict[int, Node] = {}  # member id -> its group's update

    def flat_of(operand: list[Node]) -> Node:
        source = _source(operand, groups, valid)
        if isinstance(source, Group):
            return made[id(source)]
        ids = tuple(x.id for x in operand)
        if ids not in flats:
            flats[ids] = node = flat(operand, name=_flat_name(operand))
            node.role = "update"
        return flats[ids]

    order = {n.id: i for i, n in enumerate(graph.nodes())}
    for g in sorted(groups, key=lambda g: order[g.members[0].id]):
        first = g.members[0]
        inputs = [flat_of(g.operands(k)) if k in g.pieces else first.inputs[k]
                  for k in range(len(first.inputs))]
        node = replacing(first, make(first.op.name, tuple(inputs), **first.attrs))
        node.role = "update"  # it reads the flat arrays, which the update section makes
        made[id(g)] = node
        replaced.update({m.id: node for m in g.members})
    effects = {n.id: n for n in (replaced.get(e.id, e) for e in graph.effects)}
    return Graph(graph.outputs, tuple(effects.values()))


def _flat_name(members: Sequence[Node]) -> str:
    """``flat_params`` for parameters; ``m_all`` for pieces named ``m_*`` (Adam's first
    moments, the gradients ``d_*``); ``flat`` otherwise."""
    if all(m.op.name == "param" for m in members):
        return "flat_params"
    prefixes = {(m.name or "").partition("_")[0] for m in members}
    if len(prefixes) == 1 and all("_" in (m.name or "") for m in members):
        return f"{prefixes.pop()}_all"
    return "flat"
