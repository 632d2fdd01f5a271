"""Feeds: the values given for a graph's leaves, resolved and checked one way for every
caller (``gc.evaluate``, ``gc.render``, ``gc.render_steps``, ``gc.Example`` and compiled
programs).

A feed's key is a node or the name of one. Inputs, parameters and optimizer state can be
fed (a fed parameter stands in for its stored value for that call only, as PyTensor's
givens do); a key that names nothing feedable in the graph is an error, not ignored. A
value is checked against its node before any conversion: numbers of a fitting kind, a
rectangular array of the node's shape, named dimensions of one size across all feeds,
labels within their class count, and integers that fit the node's dtype.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.errors import FeedError
from graphc.ir.node import Node
from graphc.ir.shapes import format_shape

#: The leaves a feed may give a value for, with the words an error names them by.
FEEDABLE = {"input": "input", "param": "parameter", "state": "optimizer state"}

#: Ops whose output holds only values of their (single) input: labels passed through them
#: still index with the values fed.
VALUE_PRESERVING = ("reshape", "transpose", "copy", "slice")

#: Each named dimension bound by a set of feeds: its size, and the leaf that gave it first.
Dims = dict[str, tuple[int, str | None]]

#: Values for a graph's leaves, keyed by node, by name, or by both.
Feeds = Mapping[Node, Any] | Mapping[str, Any] | Mapping[Node | str, Any]


def describe(node: Node) -> str:
    """A leaf as an error names it: ``input 'x'``, ``parameter 'W'``."""
    return f"{FEEDABLE.get(node.op.name, node.op.name)} {node.name!r}"


def leaf_name(node: Node) -> str:
    """The name of a feedable leaf, which each has (gc.input, gc.param and an optimizer's
    state are declared with one)."""
    if node.name is None:
        raise AssertionError(f"{node!r}: a leaf without a name")
    return node.name


def resolve_feeds(feeds: Feeds | None, graph: Iterable[Node],
                  caller: str) -> dict[Node, Any]:
    """``feeds`` keyed by the nodes of ``graph`` they give values for.

    A key is a node of ``graph`` or the name of one of its feedable leaves. A leaf node the
    graph does not read is passed over, so that one set of feeds serves a function and its
    gradients (the gradient of x + y reads neither), unless the graph reads another leaf of
    its name (a graph built twice: feeding the old node is a mistake). A FeedError, prefixed
    by ``caller``, names a key that is neither (a name nothing in the graph has, a value
    that is no key at all), a node that cannot be fed (an op or a constant), a name several
    leaves share, and a leaf fed twice.
    """
    if feeds is None:
        return {}
    if not isinstance(feeds, Mapping):
        raise FeedError(f"{caller}: feeds must be a mapping from nodes or names to values, "
                        f"got {type(feeds).__name__}")
    nodes = {n.id: n for n in graph}
    by_name: dict[str, list[Node]] = {}
    for n in nodes.values():
        if n.op.name in FEEDABLE:
            by_name.setdefault(leaf_name(n), []).append(n)
    resolved: dict[Node, Any] = {}
    for key, value in feeds.items():
        if isinstance(key, Node) and key.op.name in FEEDABLE and key.id not in nodes \
                and key.name not in by_name:
            continue  # a leaf these outputs do not read (d(x + y)/dx reads neither x nor y)
        node = _resolve_key(key, nodes, by_name, caller)
        if node in resolved:
            raise FeedError(f"{caller}: {describe(node)} is fed twice (by node and by name)")
        resolved[node] = value
    return resolved


def _resolve_key(key: object, nodes: Mapping[int, Node], by_name: Mapping[str, list[Node]],
                 caller: str) -> Node:
    if isinstance(key, Node):
        if nodes.get(key.id) is not key:
            raise FeedError(f"{caller}: {key!r} is fed, but the outputs do not depend on it")
        if key.op.name not in FEEDABLE:
            raise FeedError(f"{caller}: {key!r} is fed, but only inputs, parameters and "
                            "optimizer state can be fed")
        return key
    if not isinstance(key, str):
        raise FeedError(f"{caller}: the feed key {key!r} ({type(key).__name__}) is neither a "
                        "node nor a name")
    found = by_name.get(key, [])
    if not found:
        names = sorted(by_name)
        raise FeedError(f"{caller}: unknown feed {key!r}: it names no input, parameter or "
                        f"state that the outputs depend on (those are {names})")
    if len(found) > 1:
        raise FeedError(f"{caller}: {len(found)} leaves of the graph are named {key!r}; feed "
                        "them by node")
    return found[0]


@dataclass(frozen=True)
class FeedPlan:
    """What a graph needs of the values fed to it, found once from its nodes.

    ``classes[id]``: the number of classes an input's values index (the fewest, where
    several ops index with them), so that labels are checked before NumPy wraps -1 around.
    ``averaged``: the named dimensions a mean divides by, which must not be 0.
    """

    classes: dict[int, int] = field(default_factory=dict)
    averaged: frozenset[str] = frozenset()

    @classmethod
    def of(cls, nodes: Iterable[Node]) -> FeedPlan:
        classes: dict[int, int] = {}
        averaged: set[str] = set()
        for node in nodes:
            found = node.op.class_labels(node)
            if found is not None:
                labels, n = found
                while labels.op.name in VALUE_PRESERVING:
                    labels = labels.inputs[0]
                if labels.op.name == "input":
                    classes[labels.id] = min(n, classes.get(labels.id, n))
            averaged.update(d for d in _divisor_dims(node) if isinstance(d, str))
        return cls(classes, frozenset(averaged))

    def check(self, node: Node, value: Any, dims: Dims) -> np.ndarray:
        """``value`` as an array of ``node``'s dtype; a FeedError names what is wrong.

        ``dims`` binds each named dimension to its size and the leaf that gave it, across
        the calls for one set of feeds.
        """
        try:  # an array as it comes at every training step is taken as it is
            array = value if type(value) is np.ndarray else np.asarray(value)
        except (ValueError, TypeError) as err:  # a ragged nested list, for one
            raise FeedError(f"{describe(node)}: the value is not a rectangular array of "
                            f"numbers ({err})") from None
        if array.dtype != node.dtype:
            if array.dtype.kind not in "biuf":
                raise FeedError(f"{describe(node)}: expected numbers ({node.dtype}), got "
                                f"{array.dtype}")
            if node.dtype.kind in "iu" and array.dtype.kind == "f":
                raise FeedError(f"{describe(node)}: expected integers ({node.dtype}), got "
                                f"{array.dtype}")
        _check_shape(node, array, dims, self.averaged)
        classes = self.classes.get(node.id)
        if classes is not None:
            _check_labels(node, array, classes)
        if array.dtype == node.dtype:
            return array
        if array.dtype.kind in "iu" and node.dtype.kind in "iu":
            _check_fits(describe(node), array, node.dtype)
        return array.astype(node.dtype)


@dataclass(frozen=True)
class Expected:
    """What a value fed for one input is on the common path, found once: an ndarray of the
    input's dtype and rank, with its fixed sizes (``fixed``: axis and size) and its named
    dimensions (``named``: axis and name), and for labels, the number of classes."""

    name: str
    dtype: np.dtype
    ndim: int
    fixed: tuple[tuple[int, int], ...]
    named: tuple[tuple[int, str], ...]
    classes: int | None

    @classmethod
    def of(cls, node: Node, plan: FeedPlan) -> Expected:
        return cls(leaf_name(node), node.dtype, len(node.shape),
                   tuple((a, d) for a, d in enumerate(node.shape) if isinstance(d, int)),
                   tuple((a, d) for a, d in enumerate(node.shape) if isinstance(d, str)),
                   plan.classes.get(node.id))


def as_expected(expected: Sequence[Expected], feeds: Mapping[str, Any]) -> list[np.ndarray] | None:
    """The fed arrays, in order, where each is exactly as expected (no conversion, sizes that
    agree, no dimension of 0, labels in range): what a training loop feeds at every step,
    checked in a few microseconds. None otherwise: then ``FeedPlan.check`` converts each value
    or says what is wrong."""
    dims: dict[str, int] = {}
    arrays = []
    for e in expected:
        a = feeds[e.name]
        if type(a) is not np.ndarray or a.dtype != e.dtype or a.ndim != e.ndim:
            return None
        shape = a.shape
        for axis, size in e.fixed:
            if shape[axis] != size:
                return None
        for axis, dim in e.named:
            if dims.setdefault(dim, shape[axis]) != shape[axis] or not shape[axis]:
                return None
        if e.classes is not None and (
                not a.size or a.view(_UNSIGNED[a.itemsize]).max() >= e.classes):
            return None
        arrays.append(a)
    return arrays


def _divisor_dims(node: Node) -> Sequence[object]:
    """The dimensions ``node`` divides by: those a mean reduces, a count counts, and the
    batch of a softmax cross-entropy (a mean over the examples)."""
    name = node.op.name
    if name in ("mean", "size"):
        shape = node.inputs[0].shape
        return [shape[a] for a in node.attrs["axes"]]
    if name == "softmax_cross_entropy":
        return node.inputs[0].shape[:1]
    return ()


def _check_shape(node: Node, array: np.ndarray, dims: Dims, averaged: frozenset[str]) -> None:
    if array.ndim != len(node.shape):
        raise FeedError(f"{describe(node)}: expected shape {format_shape(node.shape)}, got "
                        f"{array.shape} ({array.ndim} dimensions instead of {len(node.shape)})")
    for axis, (want, got) in enumerate(zip(node.shape, array.shape)):
        if want == got:
            continue
        if isinstance(want, int):
            raise FeedError(f"{describe(node)}: expected shape {format_shape(node.shape)}, "
                            f"got {array.shape} (axis {axis} is {got}, not {want})")
        size, first = dims.setdefault(want, (got, node.name))
        if size != got:
            raise FeedError(f"{describe(node)}: dimension {want!r} is {got} here but {size} "
                            f"in {first!r}")
        if got == 0 and want in averaged:
            raise FeedError(f"{describe(node)}: dimension {want!r} is 0, but the graph takes a "
                            f"mean over {want!r}, which has no value over 0 entries; feed at "
                            "least one")


#: The unsigned integer dtype of each integer size, to view labels as.
_UNSIGNED = {size: np.dtype(f"u{size}") for size in (1, 2, 4, 8)}


def _check_labels(node: Node, labels: np.ndarray, classes: int) -> None:
    """Class labels must lie in 0..classes-1: NumPy would wrap -1 around silently."""
    if labels.size == 0:
        return
    # one reduction on the common path: seen unsigned, a negative label is a huge one
    if labels.view(_UNSIGNED[labels.itemsize]).max() < classes:
        return
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        i = int(bad[0])
        raise FeedError(f"{describe(node)}: label {labels.flat[i]} at index {i} is out of "
                        f"range for {classes} classes (expected 0..{classes - 1})")


def _check_fits(what: str, array: np.ndarray, dtype: np.dtype) -> None:
    """Integers converted to a narrower type must fit it: 2**32 + 1 would become 1."""
    if array.size == 0 or np.can_cast(array.dtype, dtype):
        return
    info = np.iinfo(dtype)
    low, high = array.min(), array.max()
    if low < info.min or high > info.max:
        bad = low if low < info.min else high
        raise FeedError(f"{what}: the value {bad} does not fit {dtype} "
                        f"({info.min}..{info.max})")
