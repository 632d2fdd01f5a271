"""Elementwise ops: every one is a SymPy expression over its inputs, so that its derivative,
its simplification and its fusion with neighbours all come from SymPy.

``+``, ``*``, ``tanh``, ``sigmoid`` and a user's ``gc.from_sympy`` activation are the same
op with different expressions. The gradient with respect to input i is
``g * d expr / d x_i``, in which SymPy's derivative is rewritten to read the forward output
``y`` where it contains the whole expression: tanh' becomes ``1 - y**2`` and sigmoid'
``y*(1 - y)``, as on the lecture slides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from typing import Any

import numpy as np
import sympy as sp
from sympy.logic.boolalg import Boolean

from graphc.errors import ShapeError
from graphc.ir.node import Array, Arrays, Emitter, Node, Storage
from graphc.ir.shapes import broadcast_axes, broadcast_shapes, format_shape
from graphc.ops import functions, inplace
from graphc.ops.expr_printer import numpy_code
from graphc.ops.leaves import constant
from graphc.ops.registry import Op, as_node_dtype, float_dtype, make
from graphc.ops.stable_forms import stable_form
from graphc.ops.unevaluated import substitute

OUT = sp.Symbol("y", real=True)


@cache
def arg(i: int) -> sp.Symbol:
    """The symbol of an elementwise node's i-th input."""
    return sp.Symbol(f"x{i}", real=True)


class Elementwise(Op):
    name = "elementwise"
    fresh = True

    def label(self, node: Node) -> str:
        return node.attrs["label"]

    def infer(self, inputs, attrs):
        shape = broadcast_shapes(*(n.shape for n in inputs))
        if shape is None:
            shapes = " and ".join(format_shape(n.shape) for n in inputs)
            raise ShapeError(f"shapes {shapes} do not broadcast together")
        expr = attrs["expr"]
        dtype = np.dtype(bool) if _is_boolean(expr) else float_dtype(*inputs)
        return shape, dtype

    def evaluate(self, node, args):
        fn = lambdify(node.attrs["expr"], len(node.inputs))
        value = np.asarray(fn(*args), dtype=node.dtype)
        return np.broadcast_to(value, np.broadcast_shapes(*(a.shape for a in args))).copy()

    def storage(self, node):
        return ufunc_storage(node, first=0)

    def emit(self, node, args, e):
        arrays = e.arrays(node)
        if arrays is not None:
            return ufunc_code(node, args, arrays, e, first=0)
        expr = node.attrs["expr"]
        e.need_helpers(expr)
        code = print_expression(expr, node, args)
        # an expression that simplified away some inputs (x - x, or fused a + -a) must still
        # have the node's shape and dtype
        used = [x for i, x in enumerate(node.inputs) if arg(i) in expr.free_symbols]
        if not used:
            dtype = "bool_" if node.dtype.kind == "b" else node.dtype.name  # (NumPy 1.26 too)
            return f"np.full({e.shape(node.shape)}, {code}, dtype=np.{dtype})"
        code = as_node_dtype(code, node, used)
        if broadcast_shapes(*(x.shape for x in used)) != node.shape:
            return f"np.broadcast_to({code}, {e.shape(node.shape)})"
        return code

    def vjp(self, node, g):
        expr = node.attrs["expr"]
        grads: list[Node | None] = []
        for i, x in enumerate(node.inputs):
            d = local_derivative(expr, i)
            if d == 0 or x.dtype.kind != "f":
                grads.append(None)
                continue
            symbols = {arg(k): n for k, n in enumerate(node.inputs)} | {OUT: node}
            gsym = sp.Symbol("g", real=True)
            local = from_expr(f"{node.label}'", gsym * d, symbols | {gsym: g}, dtype=g.dtype)
            grads.append(sum_to(local, x.shape))
        return grads


@lru_cache(maxsize=4096)
def local_derivative(expr: sp.Basic, i: int) -> sp.Basic:
    """d expr / d x_i, written with the output ``y`` wherever it contains expr itself.

    The derivative is taken of the expression's stable form (graphc.ops.stable_forms), so
    that a user's swish ``z/(1 + exp(-z))`` gets ``s + z*s*(1 - s)`` with s = sigmoid(z),
    finite at z = -1000, rather than SymPy's ``exp(-z)/(1 + exp(-z))**2``, which is inf/inf
    there. DiracDelta (the derivative of a step, zero almost everywhere) and the derivatives
    of floor and ceiling (zero almost everywhere, which SymPy leaves unevaluated) are dropped.
    Cached: the layers of a deep network repeat the same expressions.
    """
    stable = stable_form(expr)
    d = sp.diff(stable, arg(i)).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
    d = d.replace(lambda e: isinstance(e, sp.Derivative)
                  and isinstance(e.expr, (sp.floor, sp.ceiling)), lambda e: sp.S.Zero)
    return d.subs({expr: OUT, stable: OUT})


def print_expression(expr: sp.Basic, node: Node, args: Sequence[str], first: int = 0) -> str:
    """The NumPy code of an elementwise expression over ``node.inputs[first:]`` (an update's
    values come after its target), whose variables are ``args[first:]``; printed by name: two
    inputs that are one array are not merged and cancelled."""
    names = {arg(i): a for i, a in enumerate(args[first:])}
    floats = {arg(i) for i, x in enumerate(node.inputs[first:]) if x.dtype.kind == "f"}
    return numpy_code(expr, names, node.dtype, floats)


def ufunc_storage(node: Node, first: int, alias: Node | None = None) -> tuple[Storage, ...]:
    """How a node computing ``attrs["expr"]`` over ``node.inputs[first:]`` can write into
    arrays it is given, as in-place ufunc calls (graphc.ops.inplace): the lowering whose root
    computes into the output, then the one whose root writes the output in its last step
    only (which may overwrite an input the root reads). None where the expression's root has
    no ufunc, or the inputs mix float precisions (left to the plain expression's rounding).
    Each says which inputs the output may overwrite: those no step reads after the output
    is first written."""
    values = node.inputs[first:]
    if any(v.dtype != node.dtype and v.dtype.kind == "f" for v in values):
        return ()
    expr, shapes = node.attrs["expr"], {arg(j): v.shape for j, v in enumerate(values)}
    symbol = next((arg(j) for j, v in enumerate(values) if v is alias), None)
    ways = []
    for root_in_place in (True, False):
        lowering = inplace.lower(expr, shapes, node.shape, root_in_place, symbol)
        if lowering is None:
            return ()
        arrays = tuple(Array("tmp", node.shape, node.dtype) for _ in lowering.temps)
        if lowering.uses_zeros:
            arrays += (Array("zeros", node.shape, node.dtype, fill=0),)
        overwrites = frozenset(
            k for k, x in enumerate(node.inputs)
            if all(lowering.may_overwrite(arg(j)) for j, v in enumerate(values) if v is x))
        ways.append(Storage(arrays, overwrites, lowering))
    return tuple(ways)


def ufunc_code(node: Node, args: Sequence[str], arrays: Arrays, e: Emitter,
               first: int) -> list[str]:
    """The in-place ufunc calls of ``ufunc_storage``'s lowering the plan chose, into
    ``arrays``; where there are several, a comment first gives the math they compute."""
    lowering: inplace.Lowering = arrays.storage.detail
    expr, values = node.attrs["expr"], list(args[first:])
    slots = {f"T{j}": a for j, a in enumerate(arrays.arrays[:len(lowering.temps)])}
    slots[inplace.OUT] = arrays.out
    if lowering.uses_zeros:
        slots[inplace.ZEROS] = arrays.arrays[-1]
    floats = {arg(j) for j, x in enumerate(node.inputs[first:]) if x.dtype.kind == "f"}
    names = {arg(j): a for j, a in enumerate(values)}
    lines = inplace.render(lowering, names, slots, node.dtype, floats)
    for plain in lowering.plain_parts():
        e.need_helpers(plain)
    if len(lowering.steps) > 1:
        mode = node.attrs.get("mode")
        lhs = f"{args[0]} {mode}" if mode else f"{e.target(node)} ="
        lines.insert(0, f"# {lhs} {print_expression(_rounded(expr), node, args, first)}")
    return lines


def _rounded(expr: sp.Basic) -> sp.Basic:
    """``expr`` with its floats to 12 significant digits, for a comment: ``0.1`` where the
    code computes with ``1 - 0.9 = 0.09999999999999998``."""
    return expr.xreplace({f: sp.Float(float(f"{float(f):.12g}"))
                          for f in expr.atoms(sp.Float)})


#: Sub-expressions that restrict the real domain or turn finite values into NaN or Inf:
#: a rewrite that removes one may give a number where NumPy gives NaN (exp(log(x)) is not
#: x for x < 0; x/x is not 1 at 0).
PARTIAL_FUNCTIONS = (sp.log, sp.asin, sp.acos, sp.atanh, sp.acosh, sp.tan)


def _partial_parts(expr: sp.Basic) -> set[sp.Basic]:
    parts = set()
    for e in sp.preorder_traversal(expr):
        if isinstance(e, PARTIAL_FUNCTIONS):
            parts.add(e)
        elif isinstance(e, sp.Pow) and not (e.exp.is_Integer and e.exp >= 0):
            parts.add(e)  # 1/u at u = 0, u**0.5 or u**v at u < 0
    return parts


def _rebuilt(expr: sp.Basic) -> sp.Basic:
    """An expression built unevaluated (graphc.ops.unevaluated), evaluated bottom-up."""
    if not expr.args:
        return expr
    return expr.func(*(_rebuilt(a) for a in expr.args))


def keeps_domain(before: sp.Basic, after: sp.Basic) -> bool:
    """Whether ``after`` (a rewrite of ``before``) still reads every input symbol and every
    partial sub-expression of ``before`` (log(u), 1/u, sqrt(u), each in its evaluated form),
    and is real, so that it is NaN or Inf wherever ``before`` is for NumPy's real
    arithmetic."""
    if not before.free_symbols <= after.free_symbols or after.has(sp.I, sp.zoo):
        return False  # (-3)**0.5 is NaN for NumPy, sqrt(3)*I for SymPy
    present = set(sp.preorder_traversal(after))
    return all(part in present for p in _partial_parts(before)
               for part in _partial_parts(_rebuilt(p)))


def faithful(unevaluated: sp.Basic) -> sp.Basic | None:
    """The evaluated form of an expression composed unevaluated, or None
    where SymPy's evaluation would drop an input or a partial sub-expression (x - x -> 0,
    x/x -> 1, exp(log(x)) -> x): those hold for finite real numbers but not for NumPy's."""
    evaluated = _rebuilt(unevaluated)
    return evaluated if keeps_domain(unevaluated, evaluated) else None


def _is_boolean(expr: sp.Basic) -> bool:
    return isinstance(expr, (sp.core.relational.Relational, sp.logic.boolalg.Boolean))


@lru_cache(maxsize=4096)
def lambdify(expr: sp.Basic, n: int):
    """The reference NumPy function of an expression over n inputs (graphc's functions by
    their own implementations, not the printer's): what the interpreter evaluates."""
    return sp.lambdify([arg(i) for i in range(n)], expr,
                       modules=[functions.NUMPY_IMPLEMENTATIONS, "numpy"])


def from_expr(label: str, expr: sp.Basic, symbols: Mapping[sp.Symbol, Node],
              dtype: Any = None) -> Node:
    """An elementwise node computing ``expr``, whose free symbols stand for the given nodes.

    Scalar constants among the nodes are folded into the expression as numbers, and a node
    given for two symbols becomes one input, where SymPy's evaluation of the result drops
    nothing NumPy would compute (``x - x`` keeps both operands: inf - inf is NaN). An
    expression that reduces to a number becomes a constant node.
    """
    expr = sp.sympify(expr)
    ordered = sorted(expr.free_symbols, key=lambda s: s.name)
    folded = _fold(expr, ordered, symbols)
    if folded is None:  # keep every operand, each its own input
        inputs = [symbols[s] for s in ordered]
        folded = expr.xreplace({s: arg(i) for i, s in enumerate(ordered)}), inputs
    expr, inputs = folded
    if not inputs:
        if isinstance(expr, Boolean):
            return constant(bool(expr))
        return constant(float(expr), dtype=dtype or "float64")
    position = {arg(i): i for i in range(len(inputs))}
    if expr in position:  # the expression is one of its inputs, unchanged
        x = inputs[position[expr]]
        shape = broadcast_shapes(*(symbols[s].shape for s in ordered))
        if x.shape == shape and x.dtype == float_dtype(*inputs):
            return x
    return make("elementwise", inputs, expr=expr, label=label)


def _fold(expr: sp.Basic, ordered: Sequence[sp.Symbol], symbols: Mapping[sp.Symbol, Node]
          ) -> tuple[sp.Basic, list[Node]] | None:
    """``expr`` over the inputs with scalar constants as numbers and repeated nodes as one
    symbol, or None where that would change a value (see ``faithful``)."""
    inputs: list[Node] = []
    index: dict[int, sp.Symbol] = {}
    replace: dict[sp.Symbol, sp.Basic] = {}
    for sym in ordered:
        node = symbols[sym]
        if node.op.name == "constant" and node.shape == () and np.isfinite(node.array):
            replace[sym] = _literal(node)
            continue
        if node.id not in index:
            index[node.id] = arg(len(inputs))
            inputs.append(node)
        replace[sym] = index[node.id]
    folded = faithful(substitute(expr, replace))
    return None if folded is None else (folded, inputs)


def _literal(node: Node) -> sp.Basic:
    """A scalar constant as a SymPy number. str() of a NumPy scalar is its shortest
    round-trip form in its own precision: a float32 0.01 stays 0.01, not 0.0099999997."""
    value = node.array[()]
    if node.dtype.kind == "b":
        return sp.true if value else sp.false
    if node.dtype.kind == "f":
        return number(float(str(value)))
    return sp.Integer(int(value))


def number(value: float | int | bool) -> sp.Basic:
    """A Python number as SymPy: integral values as Integers, so that 1.0 * g is g."""
    value = float(value)
    return sp.Integer(int(value)) if value.is_integer() else sp.Float(value)


def sum_to(g: Node, shape) -> Node:
    """Sum ``g`` over the axes that broadcasting added to reach its shape from ``shape``.

    Built through the registry by the op's name: the reductions (graphc.ops.reduce) are made
    of elementwise expressions in their own gradients, so this module cannot import them."""
    if g.shape == tuple(shape):
        return g
    leading, stretched = broadcast_axes(tuple(shape), g.shape)
    if stretched:
        g = make("sum", (g,), axes=tuple(a + len(leading) for a in stretched), keepdims=True)
    if leading:
        g = make("sum", (g,), axes=leading, keepdims=False)
    return g
