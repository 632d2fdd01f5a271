"""The node of a graphc graph: one op applied to input nodes, with a static shape and dtype;
and what an op is, as the IR knows it (``Op``: the interface every op of graphc.ops
implements, with the table of ops by name; ``Emitter``: what an op's emission may ask of the
printer, which graphc.backend implements). Both live here, below the ops and the backend, so
that neither of those layers needs the other's.

A node's op, inputs, attrs, shape and dtype never change once it is made, and nodes are
compared by identity. Two fields may change later, on purpose: ``name`` (set by ``named``,
by ``gc.compile`` after the variable the user assigned the node to, and by autodiff for
gradients, ``d_x``; passes copy it to the nodes they make) and ``value`` (a parameter's array,
which training updates in place). Python's operators on nodes build new nodes
(``x @ W + b``), so a user declares a network by writing its math.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import numpy as np
import sympy as sp

from graphc.ir.shapes import Dim, Shape, format_shape
from graphc.ir.source import SourceLocation

_ids = itertools.count()

#: The functions Python's operators on nodes build nodes with (``x + y`` is
#: ``OPERATORS["add"](x, y)``), registered by ``graphc.ops.api`` when it is imported: the IR
#: knows no op, the ops layer above it fills these in.
OPERATORS: dict[str, Callable[..., Node]] = {}

#: The part of a program a node belongs to; the code generator prints one section each.
ROLES = ("forward", "backward", "update")


class Node:
    """One op applied to input nodes.

    ``attrs`` holds the op's static arguments (an axis, an elementwise SymPy expression);
    ``value`` holds the array of a parameter or constant; ``location`` is the user's line
    that declared the node; ``role`` says whether autodiff or an optimizer made it.
    """

    #: NumPy defers to the node's reflected operators (``np.float32(2) * x`` builds a node).
    __array_ufunc__ = None

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "name", "location", "role",
                 "value", "id", "__weakref__")

    def __init__(self, op: Op, inputs: tuple[Node, ...], attrs: dict[str, Any], shape: Shape,
                 dtype: np.dtype, name: str | None = None,
                 location: SourceLocation | None = None, role: str = "forward",
                 value: np.ndarray | None = None) -> None:
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.name = name
        self.location = location
        self.role = role
        self.value = value
        self.id = next(_ids)

    # --- description ---------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def array(self) -> np.ndarray:
        """``value``, the array of a parameter, constant or optimizer state; an input holds
        none (it is fed at each call), nor does an op's node (it is computed)."""
        if self.value is None:
            raise ValueError(f"{self!r} holds no array: it is fed or computed at each call")
        return self.value

    @property
    def label(self) -> str:
        """The op as a reader knows it: ``+``, ``tanh``, ``matmul``."""
        return self.op.label(self)

    def named(self, name: str) -> Node:
        """Give the node a name for generated code, figures and errors; returns the node."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a node name must be a non-empty string, got {name!r}")
        self.name = name
        return self

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return f"<Node{name} {self.label} {format_shape(self.shape)} {self.dtype}>"

    # --- operators: each builds a node through the public functions (``OPERATORS``) ---
    def __add__(self, other): return OPERATORS["add"](self, other)
    def __radd__(self, other): return OPERATORS["add"](other, self)
    def __sub__(self, other): return OPERATORS["subtract"](self, other)
    def __rsub__(self, other): return OPERATORS["subtract"](other, self)
    def __mul__(self, other): return OPERATORS["multiply"](self, other)
    def __rmul__(self, other): return OPERATORS["multiply"](other, self)
    def __truediv__(self, other): return OPERATORS["divide"](self, other)
    def __rtruediv__(self, other): return OPERATORS["divide"](other, self)
    def __pow__(self, other): return OPERATORS["power"](self, other)
    def __rpow__(self, other): return OPERATORS["power"](other, self)
    def __neg__(self): return OPERATORS["negative"](self)
    def __pos__(self): return self
    def __matmul__(self, other): return OPERATORS["matmul"](self, other)
    def __rmatmul__(self, other): return OPERATORS["matmul"](other, self)
    def __gt__(self, other): return OPERATORS["greater"](self, other)
    def __lt__(self, other): return OPERATORS["greater"](other, self)
    def __ge__(self, other): return OPERATORS["greater_equal"](self, other)
    def __le__(self, other): return OPERATORS["greater_equal"](other, self)
    def __getitem__(self, index): return OPERATORS["getitem"](self, index)

    @property
    def T(self) -> Node:
        return OPERATORS["transpose"](self)

    def __bool__(self) -> bool:
        raise TypeError("a graphc node has no truth value while the graph is declared; "
                        "use gc.where(cond, a, b) for a choice made at run time")

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic and has no value yet: compile the graph "
                        "with gc.compile and call the program to get arrays")


class Emitter(Protocol):
    """What an op's ``emit`` may ask of the code printer (graphc.backend.printer implements
    it): the variable of a node, fresh temporaries, the code of a dimension or a shape, the
    helper functions an expression calls, and whether the program is a training step."""

    training: bool

    def target(self, node: Node) -> str: ...

    def tmp(self, wanted: str) -> str: ...

    def dim(self, d: Dim) -> str: ...

    def shape(self, shape: Shape) -> str: ...

    def need_helpers(self, expr: sp.Basic) -> None: ...


OPS: dict[str, Op] = {}


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
