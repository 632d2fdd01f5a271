"""The reference interpreter: evaluates a graph node by node, each op by its plain NumPy
definition. It is slow and obvious on purpose: it is the oracle the generated code is
tested against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphc.errors import FeedError
from graphc.feeds import Dims, FeedPlan, Feeds, resolve_feeds
from graphc.ir.graph import topological_order
from graphc.ir.node import Node


def evaluate(outputs: Sequence[Node] | Node, feeds: Feeds | None = None) -> list[np.ndarray]:
    """The values of ``outputs`` given values for their input nodes.

    ``feeds`` is keyed by nodes or their names. Every input must be fed; a parameter or
    optimizer state fed stands in for its stored value in this call only (the stored value
    is left as it is). Values are checked as a compiled program checks them (shapes, named
    dimensions, dtypes, label ranges); a FeedError names a key the outputs do not depend on.
    """
    outputs = [outputs] if isinstance(outputs, Node) else list(outputs)
    order = topological_order(outputs)
    given = resolve_feeds(feeds, order, "evaluate")
    plan = FeedPlan.of(order)
    dims: Dims = {}
    values: dict[int, np.ndarray] = {}
    for node in order:
        if node in given:
            values[node.id] = plan.check(node, given[node], dims)
        elif node.op.name == "input":
            where = f" (declared at {node.location})" if node.location else ""
            raise FeedError(f"evaluate: no value fed for input {node.name!r}{where}")
        elif not node.inputs:
            values[node.id] = node.array
        else:
            values[node.id] = node.op.evaluate(node, [values[x.id] for x in node.inputs])
    # a leaf's value is the live array a training step updates (or a caller's fed array):
    # return a snapshot of it
    return [np.array(values[o.id], copy=True) if not o.inputs else values[o.id] for o in outputs]
