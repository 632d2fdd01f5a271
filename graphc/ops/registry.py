"""The op registry: each op declares, in one class (a subclass of graphc.ir.op.Op, which
registers it by name), its shape rule, its NumPy emission, its reference evaluation and its
gradient (a vector-Jacobian product built from graph ops).

``make`` is the one way nodes are built: it runs the op's shape rule and, where the operands
do not fit, raises a ShapeError naming the op, the shapes and the user's line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.node import OPS, Emitter, Node, Op
from graphc.ir.source import caller_location

__all__ = ["OPS", "Emitter", "Op", "as_node_dtype", "float_dtype", "make", "role"]


_role = ["forward"]


def make(op_name: str, inputs: tuple[Node, ...] | list[Node], **attrs: Any) -> Node:
    """Build a node of the named op; shape errors name the op, the shapes and the user's line."""
    op = OPS[op_name]
    inputs = tuple(inputs)
    location = caller_location()
    try:
        shape, dtype = op.infer(inputs, attrs)
    except ShapeError as err:
        where = f"\n  at {location}" if location else ""
        what = f"elementwise {attrs['label']!r}" if "label" in attrs else op_name
        raise ShapeError(f"{what}: {err}{where}") from None
    return Node(op, inputs, attrs, shape, dtype, location=location, role=_role[-1])


@contextlib.contextmanager
def role(name: str) -> Iterator[None]:
    """Nodes made inside this block belong to the named part of the program."""
    _role.append(name)
    try:
        yield
    finally:
        _role.pop()


def float_dtype(*nodes: Node) -> np.dtype:
    """The floating dtype of an op over these operands (integers promote to float64)."""
    dtype = np.result_type(*(n.dtype for n in nodes)) if nodes else np.dtype("float64")
    return dtype if dtype.kind == "f" else np.dtype("float64")


def as_node_dtype(code: str, node: Node, operands) -> str:
    """``code`` converted to the node's float dtype where all operands are integers or
    booleans: NumPy would compute ``labels + labels`` or ``counts.sum()`` in integers, while
    the node (and the reference interpreter) promotes them to float64."""
    if node.dtype.kind == "f" and not any(x.dtype.kind == "f" for x in operands):
        return f"({code}).astype(np.{node.dtype.name})"
    return code

