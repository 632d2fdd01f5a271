"""Flat storage: several arrays of one dtype as consecutive pieces of one 1-D array.

``flat(W1, b1, W2, b2)`` is their entries one after the other (``np.concatenate`` of the
raveled arrays). What makes it cheap is where the pieces live, which the backend decides:

- over parameters or optimizer state (leaves), the program keeps the leaves as views of
  one array of its own (graphc.backend.flat_storage), so the flat node is that array and
  costs nothing; an update of it (``m_all[...] = 0.9*m_all + 0.1*d_all``) updates every
  leaf at once, in the NumPy calls of one update;
- over computed values (the gradients), the memory plan places each value in a view of one
  buffer (``d_W1 = d_all[0:8192].reshape(64, 128)``), which the products computing them
  write into; unplanned, the node copies them (``np.concatenate``).

The flatten pass (graphc.passes.flatten) makes these nodes for the optimizer's updates: the
multi-tensor update of PyTorch's foreach optimizers and apex's multi_tensor_apply.
"""

from __future__ import annotations

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.node import Node
from graphc.ir.shapes import sizes_of
from graphc.ops.registry import Op, make

#: The ops whose nodes a program holds the array of: a flat node over them is storage.
HELD = ("param", "state")


class Flat(Op):
    """The entries of its inputs, in order, as one 1-D array."""

    name = "flat"
    differentiable = False

    def label(self, node):
        return "flat"

    def infer(self, inputs, attrs):
        if not inputs:
            raise ShapeError("flat needs at least one array")
        dtypes = {x.dtype for x in inputs}
        if len(dtypes) > 1:
            raise ShapeError(f"flat needs arrays of one dtype, got {sorted(map(str, dtypes))}")
        sizes = [sizes_of(x.shape) for x in inputs]
        if any(s is None for s in sizes):
            raise ShapeError("flat needs arrays whose shapes are numbers, not named dims")
        return (sum(int(np.prod(s)) for s in sizes if s is not None),), inputs[0].dtype

    def evaluate(self, node, args):
        return np.concatenate([np.ravel(a) for a in args]).astype(node.dtype, copy=False)

    def pieces(self, node):
        """Over computed values, where each is computed into a view of the node's buffer;
        over leaves, None: the program keeps those as views already."""
        return None if holds_leaves(node) else offsets(node)

    def emit(self, node, args, e):
        if e.arrays(node) is not None:  # the inputs were computed into views of the buffer
            return []
        return f"np.concatenate(({', '.join(args)}{',' * (len(args) == 1)}), axis=None)"


def flat(members: list[Node] | tuple[Node, ...], name: str | None = None) -> Node:
    """The flat array of ``members`` (see the module docstring)."""
    node = make("flat", tuple(members))
    node.name = name
    return node


def holds_leaves(node: Node) -> bool:
    """Whether a flat node is over parameters or state, kept as views of one array."""
    return all(x.op.name in HELD for x in node.inputs)


def offsets(node: Node) -> list[tuple[int, int]]:
    """Each input's (offset, size) in a flat node's array."""
    out, offset = [], 0
    for x in node.inputs:
        size = int(np.prod(sizes_of(x.shape) or ()))
        out.append((offset, size))
        offset += size
    return out
