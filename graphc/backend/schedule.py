"""What the backend decides before printing: the order of a program's statements and the
arguments of its generated function."""

from __future__ import annotations

from collections.abc import Sequence

from graphc.backend.printer import Signature
from graphc.errors import GraphcError
from graphc.feeds import FeedPlan
from graphc.ir.graph import Graph
from graphc.ir.node import Node
from graphc.ops.flat import holds_leaves


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
    (parameters not fed as inputs, optimizer state, array constants), then the flat arrays
    it keeps some of those in; and the class count of label inputs."""
    fed = {x.id for x in inputs}
    owned = [n for n in schedule if n.id not in fed and (n.op.name in ("param", "state")
             or (n.op.name == "constant" and n.shape != ()))]
    flats = [n for n in schedule if n.op.name == "flat" and holds_leaves(n)]
    for f in flats:
        if any(x.id in fed for x in f.inputs):
            raise GraphcError(f"compile: {f.name} keeps parameters the program is fed; a flat "
                              "array is only of parameters and state the program holds")
    in_flats = {f.id for f in flats}
    only_in_flats = {x.id for f in flats for x in f.inputs} - {
        x.id for n in schedule if n.id not in in_flats for x in n.inputs}
    held = [n for n in owned if n.id not in only_in_flats]
    return Signature(list(inputs), owned, plan.classes, flats, held + flats)
