"""What the backend decides before printing: the order of a program's statements and the
arguments of its generated function."""

from __future__ import annotations

from collections.abc import Sequence

from graphc.backend.printer import Signature
from graphc.errors import GraphcError
from graphc.feeds import FeedPlan
from graphc.ir.graph import Graph
from graphc.ir.node import Node


def schedule_of(graph: Graph) -> list[Node]:
    """Statement order: forward and backward first, then all in-place updates, so that no
    update overwrites a parameter that a gradient still reads."""
    order = graph.nodes()
    later = [n for n in order if n.role == "update"]
    first = [n for n in order if n.role != "update"]
    update_ids = {n.id for n in later}
    for n in first:
        if any(x.id in update_ids and x.op.name != "state" for x in n.inputs):
            raise GraphcError(f"compile: {n!r} reads a value updated in this step")
    return first + later


def signature_of(inputs: Sequence[Node], schedule: Sequence[Node], plan: FeedPlan) -> Signature:
    """The generated function's arguments: the inputs, then what the program owns
    (parameters not fed as inputs, optimizer state, array constants); and the class count
    of label inputs."""
    fed = {x.id for x in inputs}
    owned = [n for n in schedule if n.id not in fed and (n.op.name in ("param", "state")
             or (n.op.name == "constant" and n.shape != ()))]
    return Signature(list(inputs), owned, plan.classes)
