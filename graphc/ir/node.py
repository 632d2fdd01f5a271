"""The node of a graphc graph: one op applied to input nodes, with a static shape and dtype.

Nodes are immutable once made and compared by identity. Python's operators on nodes build
new nodes (``x @ W + b``), so a user declares a network by writing its math.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from graphc.ir.shapes import Shape, format_shape
from graphc.ir.source import SourceLocation

if TYPE_CHECKING:
    from graphc.ops.registry import Op

_ids = itertools.count()

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

    # --- operators: each builds a node through the public functions ------------------
    def __add__(self, other): return _ops().add(self, other)
    def __radd__(self, other): return _ops().add(other, self)
    def __sub__(self, other): return _ops().subtract(self, other)
    def __rsub__(self, other): return _ops().subtract(other, self)
    def __mul__(self, other): return _ops().multiply(self, other)
    def __rmul__(self, other): return _ops().multiply(other, self)
    def __truediv__(self, other): return _ops().divide(self, other)
    def __rtruediv__(self, other): return _ops().divide(other, self)
    def __pow__(self, other): return _ops().power(self, other)
    def __rpow__(self, other): return _ops().power(other, self)
    def __neg__(self): return _ops().negative(self)
    def __pos__(self): return self
    def __matmul__(self, other): return _ops().matmul(self, other)
    def __rmatmul__(self, other): return _ops().matmul(other, self)
    def __gt__(self, other): return _ops().greater(self, other)
    def __lt__(self, other): return _ops().greater(other, self)
    def __ge__(self, other): return _ops().greater_equal(self, other)
    def __le__(self, other): return _ops().greater_equal(other, self)
    def __getitem__(self, index): return _ops().getitem(self, index)

    @property
    def T(self) -> Node:
        return _ops().transpose(self)

    def __bool__(self) -> bool:
        raise TypeError("a graphc node has no truth value while the graph is declared; "
                        "use gc.where(cond, a, b) for a choice made at run time")

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic and has no value yet: compile the graph "
                        "with gc.compile and call the program to get arrays")


def _ops():
    import graphc.ops.api as api

    return api
