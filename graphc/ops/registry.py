"""The op registry: each op declares, in one class, its shape rule, its NumPy emission, its
reference evaluation and its gradient (a vector-Jacobian product built from graph ops).

``make`` is the one way nodes are built: it runs the op's shape rule and, where the operands
do not fit, raises a ShapeError naming the op, the shapes and the user's line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.node import Node
from graphc.ir.shapes import Shape
from graphc.ir.source import caller_location

if TYPE_CHECKING:
    from graphc.backend.printer import Emitter

OPS: dict[str, Op] = {}
_role = ["forward"]


class Op:
    """Base class of ops. Subclasses set ``name`` and override the rules they need."""

    name: ClassVar[str]
    #: False for ops whose output is constant under small changes of their inputs
    #: (argmax, comparisons, one_hot): autodiff sends no gradient through them.
    differentiable: ClassVar[bool] = True
    #: True for ops whose code is a cheap view or a number (``W.T``, ``x.shape[0]``): the
    #: printer writes the expression where it is used instead of a statement of its own.
    inline: ClassVar[bool] = False
    #: True for ops whose code always returns a new array, never a view of an input: the
    #: memory planner may then reuse an input's buffer as soon as this op has read it.
    fresh: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            OPS[cls.name] = cls()

    def label(self, node: Node) -> str:
        return self.name

    def infer(self, inputs: tuple[Node, ...], attrs: dict[str, Any]) -> tuple[Shape, np.dtype]:
        """The output's shape and dtype; raises ShapeError with a message for the user."""
        raise NotImplementedError

    def evaluate(self, node: Node, args: list[np.ndarray]) -> np.ndarray:
        """The reference interpreter: this op's value, straightforwardly, from input values."""
        raise NotImplementedError

    def emit(self, node: Node, args: list[str], e: Emitter) -> str | list[str]:
        """NumPy code: an expression, or statements that assign ``e.target(node)``."""
        raise NotImplementedError

    def scratch(self, node: Node) -> tuple[tuple[str, Shape, np.dtype], ...] | None:
        """For an op whose code can write into the memory plan's buffers (``emit_placed``):
        a (variable name, shape, dtype) for each scratch array its code needs besides its
        output. None, the default, for an op whose code allocates its own arrays."""
        return None

    def emit_placed(self, node: Node, args: list[str], out: str, scratch: list[str],
                    e: Emitter) -> list[str]:
        """Statements computing the node into ``out``, the node's variable already bound to
        its planned buffer, with the scratch arrays of ``scratch(node)`` by the variables
        ``scratch`` (bound to theirs)."""
        raise NotImplementedError

    def class_labels(self, node: Node) -> tuple[Node, int] | None:
        """For ops that index by integer class labels: the labels node and the number of
        classes, so that a program can check fed labels before indexing with them."""
        return None

    def vjp(self, node: Node, g: Node) -> list[Node | None]:
        """Gradients with respect to each input, given the output's gradient ``g``."""
        raise NotImplementedError(f"{self.name} has no gradient")


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

