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
from dataclasses import dataclass
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
                 "_value", "id", "__weakref__")

    #: How many times any node's ``value`` has been bound (to another array): a program that
    #: keeps the arrays of its leaves at hand (its arguments, its flat storage) looks at the
    #: nodes again only when this has changed since it last did.
    rebinds: ClassVar[int] = 0

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
        self._value = value
        self.id = next(_ids)

    @property
    def value(self) -> np.ndarray | None:
        """The array of a parameter, constant or optimizer state (None for others)."""
        return self._value

    @value.setter
    def value(self, value: np.ndarray | None) -> None:
        self._value = value
        Node.rebinds += 1

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


@dataclass(frozen=True)
class Array:
    """An array an op's code uses besides its output, preallocated by the memory plan: a
    scratch array (``fill`` None), or a constant one, filled once with ``fill`` when it is
    allocated and only ever read (zeros for ``np.maximum(x, zeros)``, ones for a sum written
    as a product). ``word`` names its variable in the code."""

    word: str
    shape: Shape
    dtype: np.dtype
    fill: int | None = None


@dataclass(frozen=True)
class Storage:
    """One way an op's code can write into arrays it is given, declared to the memory
    planner (``Op.storage``): the ``arrays`` its code uses besides its output (scratch and
    constant), the inputs whose arrays the output may overwrite when they die at the node
    (``overwrites``, indices into ``node.inputs``), and ``detail``, the op's own plan of that
    code (an elementwise node's ufunc steps), handed back to its ``emit``."""

    arrays: tuple[Array, ...] = ()
    overwrites: frozenset[int] = frozenset()
    detail: Any = None


@dataclass(frozen=True)
class Arrays:
    """The arrays an op's ``emit`` writes into where the memory plan placed its node: the
    variable of its output, the variables of ``storage.arrays`` in their order, and the
    storage the plan chose among those the op declared."""

    out: str
    arrays: tuple[str, ...]
    storage: Storage


class Emitter(Protocol):
    """What an op's ``emit`` may ask of the code printer (graphc.backend.printer implements
    it): the variable of a node, the arrays it writes into where the memory plan placed it,
    fresh temporaries, the code of a dimension or a shape, the helper functions an expression
    calls, and whether the program is a training step."""

    training: bool

    def target(self, node: Node) -> str: ...

    def arrays(self, node: Node) -> Arrays | None: ...

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
        """NumPy code: an expression, or statements that assign ``e.target(node)``. Where the
        memory plan placed the node (``e.arrays(node)`` is not None), the code writes into
        the arrays it is given instead: an expression is then a call writing its output
        (``np.matmul(a, b, out=...)``), statements write the output's variable, and the
        printer binds the node's variable to it."""
        raise NotImplementedError

    def storage(self, node: Node) -> tuple[Storage, ...]:
        """The ways this op's code can write into arrays it is given, preferred first, for
        the memory planner. Empty, the default, for an op whose code allocates its own."""
        return ()

    def pieces(self, node: Node) -> list[tuple[int, int]] | None:
        """For an op whose output is its inputs side by side (``flat``): each input's offset
        and size in the 1-D output, so that the memory planner can have each input computed
        straight into its piece of the output's buffer. None, the default, for other ops."""
        return None

    def updates(self, node: Node) -> int | None:
        """The input this op updates in place (an assignment's target): the node's value is
        that input's array, and its variable keeps that input's name. None, the default,
        for an op that makes a new value."""
        return None

    def class_labels(self, node: Node) -> tuple[Node, int] | None:
        """For ops that index by integer class labels: the labels node and the number of
        classes, so that a program can check fed labels before indexing with them."""
        return None

    def vjp(self, node: Node, g: Node) -> list[Node | None]:
        """Gradients with respect to each input, given the output's gradient ``g``."""
        raise NotImplementedError(f"{self.name} has no gradient")
