"""The reference interpreter: evaluates a graph node by node, each op by its plain NumPy
definition. It is slow and obvious on purpose: it is the oracle the generated code is
tested against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from graphc.errors import FeedError
from graphc.ir.graph import topological_order
from graphc.ir.node import Node


def evaluate(outputs: Sequence[Node], feeds: Mapping[Node, object]) -> list[np.ndarray]:
    """The values of ``outputs`` given values for the input nodes (by node)."""
    values: dict[int, np.ndarray] = {}
    for node in topological_order(outputs):
        if node.op.name == "input":
            if node not in feeds:
                where = f" (declared at {node.location})" if node.location else ""
                raise FeedError(f"evaluate: no value fed for input {node.name!r}{where}")
            values[node.id] = np.asarray(feeds[node], dtype=node.dtype)
        elif not node.inputs:
            values[node.id] = node.value
        else:
            values[node.id] = node.op.evaluate(node, [values[x.id] for x in node.inputs])
    # a leaf's value is the live array a training step updates: return a snapshot of it
    return [np.array(values[o.id], copy=True) if not o.inputs else values[o.id] for o in outputs]
