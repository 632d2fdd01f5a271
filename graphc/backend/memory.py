"""Memory planning: which statement writes into which preallocated buffer.

Temporaries cost page faults, not arithmetic (see performance-notes.md): a NumPy step that
allocates its intermediates afresh at every call spends much of its time in the allocator.
The plan gives every matrix product, every elementwise node (fused expression or in-place
update) and every op that declares its scratch arrays (``Op.scratch``: convolutions, pools,
softmax, one_hot) a buffer that the generated module allocates once and reuses at every call.

Liveness runs over the final schedule. A node's value is live until its last reader has run;
a reader whose result may be a view of its input (``x.T``, ``reshape``, ``broadcast_to``)
extends the life of that input to its own last reader. A buffer returns to the pool of its
shape and dtype once the value in it is dead, so the next node of that shape writes into it.
An elementwise node may write straight over an input that dies at that node where the order
of its ufunc calls allows (``np.multiply(d_h1, mask, out=d_h1)``). Program outputs, and
values that live to the end of the step, never get a buffer: the caller keeps them, and the
next call would overwrite a buffer. Parameters and optimizer state are updated in place.

The pass in the pipeline (``memory``) leaves the graph as it is: buffers belong to the
statement order, so ``plan_memory`` runs on the schedule the backend prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import sympy as sp

from graphc.backend.inplace import Lowering, lower
from graphc.ir.node import Node
from graphc.ir.shapes import Shape
from graphc.ops.elementwise import arg


@dataclass(frozen=True)
class Buffer:
    """A preallocated array: its shape (named dims allowed) and dtype."""

    shape: Shape
    dtype: np.dtype
    #: A constant buffer is filled with this value once, at allocation, and only ever read:
    #: zeros for ``np.maximum(x, zeros)``, ones for sums over the batch as products.
    fill: int | None = None

    def nbytes(self, dims: Mapping[str, int]) -> int:
        return bytes_of(self.shape, self.dtype, dims)


@dataclass(frozen=True)
class Placement:
    """Where a node's statement writes: ``out`` (a buffer index, or None when an in-place
    update writes straight into its target), its scratch buffers, and for elementwise
    nodes and updates the ufunc steps (None for a matrix product)."""

    out: int | None
    temps: tuple[int, ...] = ()
    lowering: Lowering | None = None
    #: The constant buffer the statement reads: zeros for relu, ones for a batch sum.
    constant: int | None = None


@dataclass
class MemoryPlan:
    """Buffers, and the placement of every node that writes into one."""

    buffers: list[Buffer] = field(default_factory=list)
    placements: dict[int, Placement] = field(default_factory=dict)
    #: The index of each constant buffer in ``buffers`` (a dict: deep networks ask often).
    constants: dict[Buffer, int] = field(default_factory=dict)

    def constant(self, shape: Shape, dtype: np.dtype, fill: int) -> int:
        """The read-only buffer of this shape and dtype filled with ``fill``, made on first
        request."""
        wanted = Buffer(shape, dtype, fill)
        if wanted not in self.constants:
            self.constants[wanted] = len(self.buffers)
            self.buffers.append(wanted)
        return self.constants[wanted]

    def peak_bytes(self, dims: Mapping[str, int]) -> int:
        """Bytes of all buffers: they are all allocated at once and kept between calls."""
        return sum(b.nbytes(dims) for b in self.buffers)


def bytes_of(shape: Shape, dtype: np.dtype, dims: Mapping[str, int]) -> int:
    """Bytes of an array of ``shape`` with its named dims bound by ``dims``."""
    size = 1
    for d in shape:
        size *= dims[d] if isinstance(d, str) else d
    return size * np.dtype(dtype).itemsize


def is_batch_sum(node: Node) -> bool:
    """A sum of a float matrix over its rows (a bias gradient): computed as ones @ g, which
    BLAS does two to three times faster than ``g.sum(axis=0)``."""
    return (node.op.name == "sum" and node.inputs[0].ndim == 2 and node.attrs["axes"] == (0,)
            and not node.attrs["keepdims"] and node.inputs[0].dtype == node.dtype)


def live_until(schedule: Sequence[Node], outputs: Sequence[Node]) -> dict[int, int]:
    """For each node, the index of the last statement that may read its storage (len of the
    schedule for outputs and anything an output may be a view of)."""
    end = len(schedule)
    last = {n.id: -1 for n in schedule}
    for o in outputs:
        last[o.id] = end
    for i in reversed(range(end)):
        node = schedule[i]
        reach = max(i, last[node.id]) if not node.op.fresh else i
        for x in node.inputs:
            last[x.id] = max(last[x.id], reach)
    return last


def plan_memory(schedule: Sequence[Node], outputs: Sequence[Node]) -> MemoryPlan:
    """Assign buffers to the nodes of ``schedule`` (see the module docstring)."""
    plan = MemoryPlan()
    last = live_until(schedule, outputs)
    free: dict[tuple[Shape, np.dtype], list[int]] = {}
    holder: dict[int, int] = {}  # node id -> the buffer holding its value
    held_by: dict[int, set[int]] = {}  # buffer -> ids of the nodes whose value it may hold
    dies_at: dict[int, list[int]] = {}  # schedule index -> buffers free after it

    def take(shape: Shape, dtype: np.dtype, avoid: set[int]) -> int:
        pool = free.setdefault((shape, dtype), [])
        for k in reversed(pool):
            if k not in avoid:
                pool.remove(k)
                return k
        plan.buffers.append(Buffer(shape, dtype))
        return len(plan.buffers) - 1

    for i, node in enumerate(schedule):
        placement = _place(node, i, last, holder, take)
        if placement is not None:
            if placement.lowering is not None and placement.lowering.uses_zeros:
                placement = replace(placement,
                                    constant=plan.constant(node.shape, node.dtype, 0))
            elif node.op.name == "sum":
                rows = node.inputs[0].shape[:1]
                placement = replace(placement, constant=plan.constant(rows, node.dtype, 1))
            plan.placements[node.id] = placement
            dies_at.setdefault(i, []).extend(placement.temps)
            if placement.out is not None and node.op.name != "assign":
                holder[node.id] = placement.out
                held_by.setdefault(placement.out, set()).add(node.id)
                dies_at.setdefault(max(last[node.id], i), []).append(placement.out)
            elif placement.out is not None:
                dies_at.setdefault(i, []).append(placement.out)
        for k in dict.fromkeys(dies_at.pop(i, [])):
            alive = {n for n in held_by.get(k, ()) if last[n] > i}
            held_by[k] = alive  # each holder is dropped once: linear in the schedule
            if not alive:
                buf = plan.buffers[k]
                free.setdefault((buf.shape, buf.dtype), []).append(k)
    return plan


def _place(node: Node, i: int, last: dict[int, int], holder: dict[int, int], take) -> \
        Placement | None:
    """The placement of one node, taking buffers from the pools; None for a plain statement."""
    if last[node.id] >= len(last) or not node.shape or node.dtype.kind != "f":
        return None
    inputs_held = {holder[x.id] for x in node.inputs if x.id in holder}
    scratch = node.op.scratch(node)
    if scratch is not None:  # the op writes into its buffer and scratch itself
        out = take(node.shape, node.dtype, inputs_held)
        temps = tuple(take(shape, dtype, inputs_held | {out}) for _, shape, dtype in scratch)
        return Placement(out, temps)
    if node.op.name == "matmul" or is_batch_sum(node):
        return Placement(take(node.shape, node.dtype, inputs_held))
    if node.op.name not in ("elementwise", "assign"):
        return None
    k = 1 if node.op.name == "assign" else 0
    values = node.inputs[k:]
    if any(v.dtype != node.dtype and v.dtype.kind == "f" for v in values):
        return None  # mixed precision: leave the rounding to the plain expression
    symbols = {arg(j): v for j, v in enumerate(values)}
    expr = node.attrs["expr"]
    shapes = {s: v.shape for s, v in symbols.items()}
    mode = node.attrs.get("mode")
    if isinstance(expr, sp.Symbol) and mode in ("+=", "-="):
        return None  # W += v: already in place
    lowering = lower(expr, shapes, node.shape)
    if lowering is None:
        return None
    # candidates for OUT: the update's own target ("="), or a buffer dying here
    candidates: list[tuple[sp.Symbol | None, int | None]] = []
    if mode == "=":
        own = [s for s, v in symbols.items() if v.id == node.inputs[0].id]
        candidates.append((own[0] if own else None, None))
    for s, v in symbols.items():
        if v.id in holder and last[v.id] == i and v.shape == node.shape:
            candidates.append((s, holder[v.id]))
    for symbol, out in candidates:
        for attempt in (lowering, lower(expr, shapes, node.shape, root_in_place=False)):
            if attempt is not None and (symbol is None or attempt.may_overwrite(symbol)):
                temps = tuple(take(node.shape, node.dtype, inputs_held | {out})
                              for _ in attempt.temps)
                return Placement(out, temps, attempt)
    out = take(node.shape, node.dtype, inputs_held)
    temps = tuple(take(node.shape, node.dtype, inputs_held | {out}) for _ in lowering.temps)
    return Placement(out, temps, lowering)

