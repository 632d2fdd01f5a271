"""Memory planning: which statement writes into which preallocated buffer.

Temporaries cost page faults, not arithmetic (see performance-notes.md): a NumPy step that
allocates its intermediates afresh at every call spends much of its time in the allocator.
Every op whose code can write into arrays it is given says so, and what else it needs, through
``Op.storage`` (matrix products, fused elementwise expressions and in-place updates as ufunc
calls with ``out=``, sums over the batch as products with a ones array, convolutions, pools,
softmax, one_hot); the plan gives each such node a buffer that the generated module allocates
once and reuses at every call, and the scratch and constant arrays its storage lists.

Liveness runs over the final schedule. A node's value is live until its last reader has run;
a reader whose result may be a view of its input (``x.T``, ``reshape``, ``broadcast_to``)
extends the life of that input to its own last reader. A buffer returns to the pool of its
shape and dtype once the value in it is dead, so the next node of that shape writes into it.
A node may write straight over an input that dies at that node where its storage allows
(``Storage.overwrites``: for an elementwise node, where the order of its ufunc calls allows,
``np.multiply(d_h1, mask, out=d_h1)``). Program outputs, and values that live to the end of
the step, never get a buffer: the caller keeps them, and the next call would overwrite a
buffer. Parameters and optimizer state are updated in place
(``Op.updates``). A node whose output is its inputs side by side (``Op.pieces``: the flat
gradients of a flat update) gets a buffer of its own, and each of its inputs a view of its
piece of it, which that input's code writes into (``np.matmul(x.T, g, out=d_W1)``, d_W1 a
view of d_all); no other node writes over a piece, and the whole buffer returns to its pool
only once it and every piece are dead.

Planning is a step of the backend, not a pass of the pipeline (``gc.compile(memory=...)``,
on by default at optimize 2 and 3): buffers belong to the statement order, so
``plan_memory`` runs on the schedule the backend prints, after every pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.ir.node import Node, Storage
from graphc.ir.shapes import Shape


@dataclass(frozen=True)
class Buffer:
    """A preallocated array: its shape (named dims allowed) and dtype."""

    shape: Shape
    dtype: np.dtype
    #: A constant buffer is filled with this value once, at allocation, and only ever read:
    #: zeros for ``np.maximum(x, zeros)``, ones for sums over the batch as products.
    fill: int | None = None
    #: A piece of another buffer (its index, and the offset of this one's first entry in
    #: it): the value of an input of a ``flat`` node, computed straight into its piece.
    view_of: tuple[int, int] | None = None

    def nbytes(self, dims: Mapping[str, int]) -> int:
        return bytes_of(self.shape, self.dtype, dims)


@dataclass(frozen=True)
class Placement:
    """Where a node's statement writes: ``out`` (a buffer index, or None when the node
    writes straight into the input it updates, ``Op.updates``), a buffer for each array of
    its ``storage`` (scratch from the pools, constants shared), and that storage, the one of
    the op's ways (``Op.storage``) the plan chose."""

    out: int | None
    arrays: tuple[int, ...] = ()
    storage: Storage = Storage()

    @property
    def temps(self) -> tuple[int, ...]:
        """The scratch buffers: free again once the statement has run."""
        return tuple(b for b, a in zip(self.arrays, self.storage.arrays) if a.fill is None)

    @property
    def lowering(self) -> Any:
        """The op's own plan of its code (an elementwise node's ufunc steps), or None."""
        return self.storage.detail


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
        """Bytes of all buffers (a piece of another is no memory of its own): they are all
        allocated at once and kept between calls."""
        return sum(b.nbytes(dims) for b in self.buffers if b.view_of is None)


def bytes_of(shape: Shape, dtype: np.dtype, dims: Mapping[str, int]) -> int:
    """Bytes of an array of ``shape`` with its named dims bound by ``dims``."""
    size = 1
    for d in shape:
        size *= dims[d] if isinstance(d, str) else d
    return size * np.dtype(dtype).itemsize


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

    pieces = _place_pieces(schedule, last, plan)
    # never written over by a node that reads them
    fixed = {p.out for p in pieces.values() if p.out is not None}
    pieces_in: dict[int | None, list[int]] = {  # a whole buffer -> the nodes in its pieces
        pieces[n.id].out: [x.id for x in n.inputs] for n in schedule
        if n.id in pieces and n.op.pieces(n) is not None}
    for i, node in enumerate(schedule):
        if node.id in pieces:
            chosen: tuple[Storage, int | str | None] | None = pieces[node.id].storage, \
                pieces[node.id].out
        else:
            chosen = _choose(node, i, last, holder, fixed)
        if chosen is None:
            continue
        storage, where = chosen
        avoid = {holder[x.id] for x in node.inputs if x.id in holder}
        out = take(node.shape, node.dtype, avoid) if isinstance(where, str) else where
        scratch = [a for a in storage.arrays if a.fill is None]
        busy = avoid if out is None else avoid | {out}
        temps = iter([take(a.shape, a.dtype, busy) for a in scratch])
        arrays = tuple(next(temps) if a.fill is None else plan.constant(a.shape, a.dtype, a.fill)
                       for a in storage.arrays)
        placement = plan.placements[node.id] = Placement(out, arrays, storage)
        dies_at.setdefault(i, []).extend(placement.temps)
        if out is not None and out in fixed and out not in pieces_in:  # a piece: kept
            holder[node.id] = out
        elif out is not None and node.op.updates(node) is None:
            holder[node.id] = out
            # a whole buffer is free once its node and every piece are dead
            sharers = [node.id, *pieces_in.get(out, ())]
            held_by.setdefault(out, set()).update(sharers)
            dies_at.setdefault(max(i, *(last[n] for n in sharers)), []).append(out)
        elif out is not None:  # an update computed into a scratch buffer, then applied
            dies_at.setdefault(i, []).append(out)
        for k in dict.fromkeys(dies_at.pop(i, [])):
            alive = {n for n in held_by.get(k, ()) if last[n] > i}
            held_by[k] = alive  # each holder is dropped once: linear in the schedule
            if not alive:
                buf = plan.buffers[k]
                free.setdefault((buf.shape, buf.dtype), []).append(k)
    return plan


#: ``_choose``'s answer for an output that needs a buffer of its own from the pools.
_NEW = "new"


def _place_pieces(schedule: Sequence[Node], last: dict[int, int],
                  plan: MemoryPlan) -> dict[int, Placement]:
    """The placements of the nodes whose outputs are pieces of another's (``Op.pieces``),
    and of those inputs: each input in a view of its piece, where every input can write
    into a buffer it is given (else the node copies them, unplaced)."""
    placed: dict[int, Placement] = {}
    for node in schedule:
        pieces = node.op.pieces(node)
        if pieces is None or any(x.id in placed for x in node.inputs):
            continue
        ways = [_storage_of(x, last) for x in node.inputs]
        if not all(w and x.inputs and x.op.updates(x) is None
                   for x, w in zip(node.inputs, ways)):
            continue  # some input cannot be computed into a buffer it is given
        plan.buffers.append(Buffer(node.shape, node.dtype))
        whole = len(plan.buffers) - 1
        placed[node.id] = Placement(whole)
        for x, (offset, _), storage in zip(node.inputs, pieces, ways):
            plan.buffers.append(Buffer(x.shape, x.dtype, view_of=(whole, offset)))
            placed[x.id] = Placement(len(plan.buffers) - 1, storage=storage[0])
    return placed


def _storage_of(node: Node, last: dict[int, int]) -> tuple[Storage, ...]:
    """The ways a node's code can write into arrays it is given (``Op.storage``); none for
    a value the plan leaves to a plain statement: an output (the caller keeps it), a scalar,
    or not a float."""
    if last[node.id] >= len(last) or not node.shape or node.dtype.kind != "f":
        return ()
    return node.op.storage(node)


def _choose(node: Node, i: int, last: dict[int, int], holder: dict[int, int],
            fixed: set[int]) -> tuple[Storage, int | str | None] | None:
    """The storage a node writes with and where its output goes: into the input it
    updates (None), over the buffer of an input that dies at this node, or into a new
    buffer (``_NEW``); None for a plain statement (the op declares no storage, or the value
    is an output, a scalar or not a float)."""
    ways = _storage_of(node, last)
    if not ways:
        return None
    target = node.op.updates(node)
    candidates: list[tuple[int, int | str | None]] = [] if target is None else [(target, None)]
    candidates += [(k, holder[x.id]) for k, x in enumerate(node.inputs)
                   if x.id in holder and last[x.id] == i and x.shape == node.shape
                   and holder[x.id] not in fixed]
    for k, out in candidates:
        for storage in ways:
            if k in storage.overwrites:
                return storage, out
    return ways[0], _NEW
