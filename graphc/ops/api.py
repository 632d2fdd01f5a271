"""The functions a user declares a network with: ``gc.exp``, ``gc.sum``, ``gc.softmax``...

Each builds a node through the op registry. Elementwise functions are SymPy expressions
over their operands; Python numbers become constants in the expression.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import sympy as sp

from graphc.errors import ExpressionError, GraphcError, ShapeError
from graphc.ir.node import OPERATORS, Node
from graphc.ops import functions as F
from graphc.ops import nn  # noqa: F401  (its ops register themselves on import)
from graphc.ops.elementwise import arg, from_expr
from graphc.ops.expr_printer import UnprintableError, check_printable
from graphc.ops.leaves import constant, numeric_dtype
from graphc.ops.reduce import (
    argmax,
    axes_of,
    expand,
    is_int,
    reduce_max,
    reduce_mean,
    reduce_sum,
    size,
)
from graphc.ops.registry import make
from graphc.ops.tensor import concatenate, matmul, reshape, transpose

__all__ = [
    "abs", "add", "argmax", "concatenate", "divide", "exp", "expand", "from_sympy",
    "greater", "greater_equal", "log", "log_softmax", "logsumexp", "matmul",
    "max", "maximum", "mean", "minimum", "multiply", "negative", "one_hot", "power",
    "reshape", "size", "softmax", "softmax_cross_entropy", "sqrt",
    "subtract", "sum", "tanh", "take", "transpose", "where", "flatten", "square",
]  # and the ACTIVATIONS, below

Operand = Node | float | int | np.ndarray


def _node(x: Operand) -> Node:
    if isinstance(x, Node):
        return x
    if isinstance(x, (bool, int, float, np.number, np.ndarray, list, tuple)):
        return constant(x)
    raise TypeError(f"cannot use {type(x).__name__} {x!r} in a graph: expected a graphc node, "
                    "a number or a NumPy array")


def _elementwise(label: str, fn, *operands: Operand) -> Node:
    """An elementwise node ``fn(x0, x1, ...)`` over the operands; numbers stay numbers."""
    nodes = [_node(x) for x in operands]
    dtype = next((n.dtype for n in nodes if n.dtype.kind == "f"), None)
    syms = [arg(i) for i in range(len(nodes))]
    return from_expr(label, fn(*syms), dict(zip(syms, nodes)), dtype=dtype)


# --- arithmetic (the operators on nodes) ---------------------------------------------
def add(a: Operand, b: Operand) -> Node:
    return _elementwise("+", lambda x, y: x + y, a, b)


def subtract(a: Operand, b: Operand) -> Node:
    return _elementwise("-", lambda x, y: x - y, a, b)


def multiply(a: Operand, b: Operand) -> Node:
    return _elementwise("*", lambda x, y: x * y, a, b)


def divide(a: Operand, b: Operand) -> Node:
    return _elementwise("/", lambda x, y: x / y, a, b)


def power(a: Operand, b: Operand) -> Node:
    return _elementwise("**", lambda x, y: x**y, a, b)


def negative(x: Operand) -> Node:
    return _elementwise("neg", lambda x: -x, x)


def square(x: Operand) -> Node:
    return _elementwise("square", lambda x: x**2, x)


def greater(a: Operand, b: Operand) -> Node:
    return _elementwise(">", lambda x, y: sp.StrictGreaterThan(x, y), a, b)


def greater_equal(a: Operand, b: Operand) -> Node:
    return _elementwise(">=", lambda x, y: sp.GreaterThan(x, y), a, b)


# --- activations and elementwise functions -------------------------------------------
def exp(x: Operand) -> Node:
    return _elementwise("exp", sp.exp, x)


def log(x: Operand) -> Node:
    return _elementwise("log", sp.log, x)


def sqrt(x: Operand) -> Node:
    return _elementwise("sqrt", sp.sqrt, x)


def abs(x: Operand) -> Node:  # noqa: A001
    return _elementwise("abs", sp.Abs, x)


def tanh(x: Operand) -> Node:
    return _elementwise("tanh", sp.tanh, x)


def _coefficient(fn: str, param: str, value: object) -> sp.Basic:
    """An activation's parameter (leaky_relu's alpha) as a SymPy number; anything but a
    finite real number is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise GraphcError(f"{fn}: {param} must be a finite real number, got {value!r}")
    return sp.Float(float(value))


def _activation(record: F.Record) -> Callable[..., Node]:
    """``gc.<name>(x, **params)`` for an elementwise function's record: its SymPy function
    (or expression) of x and the record's parameters, with their defaults."""
    params = record.params or ()
    signature = inspect.Signature(
        [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
           for p, d in params])
    build = record.function or record.expression
    assert build is not None, record.name

    def declare(*args: object, **kwargs: object) -> Node:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{record.name}{signature}: {err}") from None
        bound.apply_defaults()
        coefficients = [_coefficient(record.name, p, bound.arguments[p]) for p, _ in params]
        x = bound.arguments["x"]
        return _elementwise(record.name, lambda v: build(v, *coefficients), x)

    declare.__name__ = declare.__qualname__ = record.name
    declare.__module__ = __name__
    declare.__doc__ = record.doc
    declare.__signature__ = signature  # type: ignore[attr-defined]  # (read by inspect)
    return declare


#: ``gc.relu``, ``gc.sigmoid``, ``gc.gelu``...: a function for every record of
#: graphc.ops.functions with parameters (see ``__getattr__``).
ACTIVATIONS: dict[str, Callable[..., Node]] = {
    name: _activation(r) for name, r in F.RECORDS.items() if r.params is not None}
__all__ += sorted(ACTIVATIONS)


def __getattr__(name: str) -> Callable[..., Node]:
    """The activations of ``ACTIVATIONS`` as attributes of this module (``api.relu``), so
    that adding one is a record in graphc.ops.functions and nothing else."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def maximum(a: Operand, b: Operand) -> Node:
    """Elementwise max; the gradient is routed to the larger operand (split evenly on ties)."""
    return _elementwise("max", sp.Max, a, b)


def minimum(a: Operand, b: Operand) -> Node:
    return _elementwise("min", sp.Min, a, b)


def where(cond: Node, a: Operand, b: Operand) -> Node:
    """``a`` where ``cond`` holds, else ``b``: a choice made at run time, elementwise."""
    if not isinstance(cond, Node) or cond.dtype != np.dtype(bool):
        raise ShapeError(f"where: the condition must be a boolean node (such as x > 0), "
                         f"got {cond!r}")
    return _elementwise("where", lambda c, x, y: sp.Piecewise((x, c), (y, True)), cond, a, b)


def from_sympy(expr: sp.Basic, symbols: Mapping[sp.Symbol, Operand]) -> Node:
    """An elementwise node computing a SymPy expression of nodes.

    Its derivative is derived by SymPy, so a user-defined activation needs no hand-written
    backward: ``gc.from_sympy(z / (1 + sp.Abs(z)), {z: h})``. The expression must be real
    and elementwise, built of arithmetic, the functions NumPy has and graphc's activations;
    anything else (``sp.I``, ``sp.oo``, ``z/0``, an unevaluated Integral, a Matrix) is
    refused here, with what it is, rather than failing inside the generated code.
    """
    try:
        expr = sp.sympify(expr)
    except (sp.SympifyError, TypeError) as err:
        raise ExpressionError(f"from_sympy: {expr!r} is not a SymPy expression ({err})") from None
    if not isinstance(expr, sp.Basic):
        raise ExpressionError(f"from_sympy: {type(expr).__name__} {expr} is not an elementwise "
                          "SymPy expression")
    missing = expr.free_symbols - set(symbols)
    if missing:
        raise ExpressionError(f"from_sympy: symbols {sorted(map(str, missing))} of {expr} are "
                          "not given a node")
    real = {s: sp.Symbol(s.name, real=True) for s in symbols}
    expr = expr.xreplace(real)
    _check_real_expression(expr, [real[s] for s in symbols if s in expr.free_symbols])
    nodes = {real[s]: _node(v) for s, v in symbols.items()}
    return from_expr(str(expr), expr, nodes)


def _check_real_expression(expr: sp.Basic, symbols: Sequence[sp.Symbol]) -> None:
    """Refuse an expression, or a derivative of it, that graphc cannot write as NumPy code
    over real arrays."""
    what = f"from_sympy: cannot compute {expr}"
    if expr.has(sp.oo, -sp.oo, sp.zoo, sp.nan):
        raise ExpressionError(f"{what}: it holds an infinity or NaN (for an infinite constant, "
                          "pass gc.constant(np.inf) as a symbol's node)")
    for e in [expr, *(sp.diff(expr, s) for s in symbols)]:
        try:
            check_printable(e.replace(sp.DiracDelta, lambda *a: sp.S.Zero))
        except UnprintableError as err:
            part = "it" if e is expr else "its derivative"
            raise ExpressionError(f"{what}: {part} is not a real elementwise expression: {err}"
                              ) from None


# --- reductions ------------------------------------------------------------------------
def sum(x: Node, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Node:  # noqa: A001
    return reduce_sum(x, axis, keepdims)


def mean(x: Node, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Node:
    return reduce_mean(x, axis, keepdims)


def max(x: Node, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Node:  # noqa: A001
    return reduce_max(x, axis, keepdims)


# --- network outputs -------------------------------------------------------------------
def softmax(x: Node, axis: int = -1) -> Node:
    (a,) = axes_of("softmax", x, axis, single=True)
    return make("softmax", (x,), axis=a)


def log_softmax(x: Node, axis: int = -1) -> Node:
    (a,) = axes_of("log_softmax", x, axis, single=True)
    return make("log_softmax", (x,), axis=a)


def logsumexp(x: Node, axis: int = -1, keepdims: bool = False) -> Node:
    (a,) = axes_of("logsumexp", x, axis, single=True)
    return make("logsumexp", (x,), axis=a, keepdims=bool(keepdims))


def take(x: Node, labels: Node) -> Node:
    """``x[i, labels[i]]`` for each row i: select each example's entry by its integer label."""
    return make("take", (x, labels))


def one_hot(labels: Node, depth: int, dtype="float64") -> Node:
    """A row of ``depth`` entries per label, 1 at the label and 0 elsewhere."""
    if not is_int(depth) or depth < 1:
        raise ShapeError(f"one_hot: depth must be a positive integer (the number of classes), "
                         f"got {depth!r}")
    return make("one_hot", (labels,), depth=int(depth),
                dtype=numeric_dtype("one_hot", dtype))


def softmax_cross_entropy(logits: Node, labels: Node) -> Node:
    """Mean over the batch of -log softmax(logits)[label], for integer labels."""
    return make("softmax_cross_entropy", (logits, labels))


def flatten(x: Node) -> Node:
    """(batch, ...) to (batch, features)."""
    return reshape(x, (x.shape[0], -1))


def getitem(x: Node, index) -> Node:
    raise TypeError("indexing a node is not supported; use gc.take(x, labels) to select "
                    "entries by integer labels, or gc.reshape / gc.transpose")


OPERATORS.update(add=add, subtract=subtract, multiply=multiply, divide=divide, power=power,
                 negative=negative, matmul=matmul, greater=greater,
                 greater_equal=greater_equal, getitem=getitem, transpose=transpose)
