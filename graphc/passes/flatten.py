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

The pass declares what it tracks: for each update, its *group* (mode, expression, dtype,
and which inputs are numbers shared by the group: ``update_key``) and the parameter it
is for (``parameter_of``). A group is flattened only where each of its array operands is,
for every member alike, a parameter or state, a computed value, or the member's own result
of an earlier flattened group (Adam's weight update reads the new m and v), and where no
node outside the flattened groups reads a member's result.
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
            break
        groups = kept
    if not groups:
        return graph
    return _rebuild(graph, groups)


class Key(NamedTuple):
    """What updates must share to be one flat update: mode, expression and dtype, and for
    each operand after the target the id of the node (a number, shared by the group) or
    None (an array of the target's shape: a piece)."""

    mode: str
    expr: Any
    dtype: np.dtype
    operands: tuple[int | None, ...]


def update_key(node: Node) -> Key | None:
    """An update's ``Key``; None for a node that is no update of an array leaf by
    pieces and numbers."""
    if node.op.name != "assign":
        return None
    target, *values = node.inputs
    if target.op.name not in HELD or target.shape == ():
        return None
    operands: list[int | None] = []
    for v in values:
        if v.shape == ():
            operands.append(v.id)
        elif v.shape == target.shape and v.dtype == node.dtype:
            operands.append(None)
        else:
            return None
    return Key(node.attrs["mode"], node.attrs["expr"], node.dtype, tuple(operands))


def parameter_of(node: Node) -> Node | None:
    """The parameter an update is for: its target, or the parameter its target state is
    kept for (``state``'s ``attrs["of"]``)."""
    target = node.inputs[0]
    return target if target.op.name == "param" else target.attrs.get("of")


@dataclass(eq=False)
class Group:
    """Updates to flatten together, ordered by their parameters."""

    key: Key
    members: list[Node]

    def operands(self, k: int) -> list[Node]:
        """Each member's input ``k`` (0: the target)."""
        return [m.inputs[k] for m in self.members]

    @property
    def pieces(self) -> list[int]:
        """The input positions that are arrays (the target is one)."""
        return [0] + [k + 1 for k, shared in enumerate(self.key.operands) if shared is None]


def _groups(order: Sequence[Node]) -> list[Group]:
    """The candidate groups, in the order of their first member: updates with one key, two
    or more, each for a parameter of its own."""
    by_key: dict[Key, list[Node]] = {}
    for node in order:
        key = update_key(node)
        if key is not None and parameter_of(node) is not None:
            by_key.setdefault(key, []).append(node)
    groups = []
    for key, members in by_key.items():
        params = {_order(m) for m in members}
        if len(members) >= 2 and len(params) == len(members):
            groups.append(Group(key, sorted(members, key=_order)))
    return groups


def _order(update: Node) -> int:
    """Where an update's parameter comes among the parameters: the order they were declared
    in (node ids count up), the same for every group."""
    param = parameter_of(update)
    assert param is not None  # _groups keeps only updates for a parameter
    return param.id


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
    """Whether every piece operand has a source, no node is a piece of two different flat
    arrays, and every reader of a member's result is a valid group reading it as a piece."""
    if any(_source(group.operands(k), groups, valid) is None for k in group.pieces):
        return False
    readers = {n.id for g in groups if id(g) in valid for n in g.members}
    for m in group.members:
        if any(u.id not in readers for u in users.get(m.id, [])):
            return False
    return _pieces_once(groups, valid)


def _pieces_once(groups: Sequence[Group], valid: set[int]) -> bool:
    """Whether each leaf or computed value is a piece of one flat array only (it can be a
    view of one array, not of two)."""
    flats: dict[int, tuple[int, ...]] = {}
    for g in groups:
        if id(g) not in valid:
            continue
        for k in g.pieces:
            operand = g.operands(k)
            if isinstance(_source(operand, groups, valid), Group):
                continue
            ids = tuple(x.id for x in operand)
            if any(flats.setdefault(i, ids) != ids for i in ids):
                return False
    return True


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
        node = replacing(first, make("assign", tuple(inputs), expr=first.attrs["expr"],
                                     mode=first.attrs["mode"]))
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
