"""The numbers on a figure's edges: each node's forward value and the gradient of the output
with respect to it, both computed by the reference interpreter.

Gradients are the graph autodiff builds (``backpropagate``), evaluated like any other
graph, so a figure shows what graphc computes rather than a second implementation of it.
Where a value fans out, each branch's own contribution (the vector-Jacobian product of
that consumer) is evaluated too, so the figure can show the gradients adding up.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from graphc.errors import FeedError
from graphc.interpreter import evaluate
from graphc.ir.node import Node
from graphc.ops.api import sum as reduce_sum
from graphc.ops.leaves import constant
from graphc.ops.registry import role
from graphc.passes.autodiff import backpropagate


@dataclass
class Annotations:
    """Evaluated numbers, by node id.

    ``grads[u]`` is the gradient of the objective (the output, or the sum of the outputs)
    with respect to ``u``; ``branches[(v, i)]`` is the part of it that flows back through
    consumer ``v``'s ``i``-th input; ``seeds[o]`` is the part an output ``o`` receives as an
    output (ones); ``split`` the consumers whose parts were computed. ``extra`` holds the
    values of any other nodes the caller asked for.
    """

    values: dict[int, np.ndarray] = field(default_factory=dict)
    grads: dict[int, np.ndarray] = field(default_factory=dict)
    branches: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    seeds: dict[int, np.ndarray] = field(default_factory=dict)
    split: set[int] = field(default_factory=set)
    extra: dict[int, np.ndarray] = field(default_factory=dict)

    def branch(self, consumer: Node, index: int) -> np.ndarray | None:
        """The gradient flowing back along ``consumer``'s ``index``-th input edge (None where
        none does): its own part where it was split, else the whole gradient of the input,
        which is the same where the input has this one consumer."""
        if consumer.id in self.split:
            return self.branches.get((consumer.id, index))
        return self.grads.get(consumer.inputs[index].id)


def objective(outputs: Sequence[Node]) -> Node | None:
    """The scalar whose gradients a figure shows: the only output when it is a scalar, else
    the sum of every floating-point output (so each output is seeded with ones)."""
    floats = [o for o in outputs if o.dtype.kind == "f"]
    if not floats:
        return None
    if len(floats) == 1 and floats[0].shape == ():
        return floats[0]
    with role("backward"):
        return functools.reduce(operator.add, [reduce_sum(o) for o in floats])


def adjoints(y: Node) -> dict[int, Node]:
    """The gradient node of everything ``y`` depends on, seeded with 1 (autodiff's own)."""
    with role("backward"):
        return backpropagate(y, constant(1.0, dtype=y.dtype))


def contributions(consumers: Iterable[Node], adjoint: Mapping[int, Node]
                  ) -> dict[tuple[int, int], Node]:
    """Each consumer's vector-Jacobian products: the gradient it sends back to each input."""
    out: dict[tuple[int, int], Node] = {}
    with role("backward"):
        for v in consumers:
            g = adjoint.get(v.id)
            if g is None or not v.op.differentiable:
                continue
            for i, gx in enumerate(v.op.vjp(v, g)):
                if gx is not None:
                    out[(v.id, i)] = gx
    return out


def check_feeds(nodes: Iterable[Node], feeds: Mapping[Node, object]) -> None:
    """Raise FeedError, naming the input and its line, where an input has no value."""
    for node in nodes:
        if node.op.name == "input" and node not in feeds:
            where = f" (declared at {node.location})" if node.location else ""
            raise FeedError(f"no value is fed for input {node.name!r}{where}; a figure with "
                            "values needs one for every input (render draws the graph without "
                            "values when feeds=None)")


def annotate(outputs: Sequence[Node], nodes: Sequence[Node], feeds: Mapping[Node, object],
             grads: bool = True, split: Iterable[Node] = (),
             extra: Sequence[Node] = ()) -> Annotations:
    """Values of ``nodes`` and, with ``grads``, the gradients of ``outputs`` with respect to
    them, plus the per-edge contributions of the consumers in ``split`` and the values of
    ``extra`` nodes. One pass of the interpreter evaluates them all.

    ``feeds`` is keyed by leaf nodes (``resolve_feeds``); those of leaves the figure does
    not draw (an input the optimizing passes removed) are left out."""
    drawn = {n.id for n in nodes}
    feeds = {n: v for n, v in feeds.items() if n.id in drawn}
    check_feeds(nodes, feeds)
    split = list(split)
    y = objective(outputs) if grads else None
    adjoint = adjoints(y) if y is not None else {}
    parts = contributions(split, adjoint) if adjoint else {}
    wanted = {k: g for k, g in adjoint.items() if k in drawn}
    order = list(nodes) + list(wanted.values()) + list(parts.values()) + list(extra)
    results = dict(zip((n.id for n in order), evaluate(order, feeds)))
    notes = Annotations()
    notes.values = {n.id: results[n.id] for n in nodes}
    notes.grads = {k: results[g.id] for k, g in wanted.items()}
    notes.branches = {k: results[g.id] for k, g in parts.items()}
    notes.split = {v.id for v in split} if adjoint else set()
    notes.extra = {n.id: results[n.id] for n in extra}
    if y is not None:
        notes.seeds = {o.id: np.ones_like(notes.values[o.id]) for o in outputs
                       if o.dtype.kind == "f"}
    return notes
