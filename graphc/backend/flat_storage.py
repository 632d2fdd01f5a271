"""Flat storage: the parameters and optimizer state a program keeps as views of flat arrays.

A flat update (graphc.passes.flatten) writes one 1-D array, ``flat_params`` or ``m_all``;
for that to update W1, b1, ... their arrays must be views of it. The leaves' values stay
the truth: ``W1.value`` is the array every program compiled from the node reads, and
``prog.params``, checkpoints and ``Trainer.save`` reach the parameters by name through it.
So a program lays its leaves out flat when it is made, and checks, before a call that follows
any rebinding of a node's value (``Node.rebinds``), that each leaf still holds the view it was
given: where something bound a leaf to another array
(another program that laid the same leaves out otherwise, a gradient check that swapped in
its own), the program lays them out again from the values they hold now. Leaves that are
already views of one array laid out as this program needs (by another program) are kept as
they are, so programs over the same parameters share them.

So an array taken from a parameter before a training step was compiled (``w = W1.array``)
may no longer be W1's storage after it: the step copied W1 into its flat array. Read
parameters through ``prog.params`` or ``W1.array`` after compiling; those are the live views.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphc.ir.node import Node
from graphc.ops.flat import offsets


class FlatStorage:
    """The flat arrays of a program's ``flats`` nodes (each over parameters or state), kept
    in the nodes' ``value``, which the program passes to the generated code."""

    def __init__(self, flats: Sequence[Node]) -> None:
        self.flats = list(flats)
        self._views: list[tuple[Node, np.ndarray]] = []
        if self.flats:
            self._lay_out()

    def current(self) -> None:
        """Lay the leaves out again where one of them no longer holds its view."""
        for leaf, view in self._views:
            if leaf.value is not view:
                self._lay_out()
                return

    def _lay_out(self) -> None:
        self._views = []
        for flat in self.flats:
            flat.value = _shared_base(flat)
            if flat.value is None:
                flat.value = np.concatenate([leaf.array for leaf in flat.inputs], axis=None)
                flat.value = flat.value.astype(flat.dtype, copy=False)
                for leaf, (offset, size) in zip(flat.inputs, offsets(flat)):
                    leaf.value = flat.value[offset:offset + size].reshape(leaf.array.shape)
            self._views += [(leaf, leaf.array) for leaf in flat.inputs]


def _shared_base(flat: Node) -> np.ndarray | None:
    """The 1-D array the flat node's leaves are already consecutive views of, in order and
    filling it, or None."""
    first = flat.inputs[0].array
    base = first.base
    if not isinstance(base, np.ndarray) or base.ndim != 1 or base.dtype != flat.dtype \
            or base.shape != flat.shape or not base.flags.c_contiguous:
        return None
    start = base.__array_interface__["data"][0]
    for leaf, (offset, size) in zip(flat.inputs, offsets(flat)):
        a = leaf.array
        if a.base is not base or not a.flags.c_contiguous or a.size != size \
                or a.__array_interface__["data"][0] != start + offset * base.itemsize:
            return None
    return base
