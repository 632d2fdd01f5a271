"""Elementwise ops: every one is a SymPy expression over its inputs, so that its derivative,
its simplification and its fusion with neighbours all come from SymPy.

``+``, ``*``, ``tanh``, ``sigmoid`` and a user's ``gc.from_sympy`` activation are the same
op with different expressions. The gradient with respect to input i is
``g * d expr / d x_i``, in which SymPy's derivative is rewritten to read the forward output
``y`` where it contains the whole expression: tanh' becomes ``1 - y**2`` and sigmoid'
``y*(1 - y)``, as on the lecture slides.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

import numpy as np
import sympy as sp

from graphc.backend.expr_printer import numpy_code
from graphc.errors import ShapeError
from graphc.ir.node import Node
from graphc.ir.shapes import broadcast_shapes, format_shape
from graphc.ops import functions
from graphc.ops.registry import Op, as_node_dtype, float_dtype, make

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
        fn = _lambdify(node.attrs["expr"], len(node.inputs))
        value = np.asarray(fn(*args), dtype=node.dtype)
        return np.broadcast_to(value, np.broadcast_shapes(*(a.shape for a in args))).copy()

    def emit(self, node, args, e):
        names = {arg(i): sp.Symbol(a, real=True) for i, a in enumerate(args)}
        expr = node.attrs["expr"].xreplace(names)
        e.need_helpers(expr)
        code = numpy_code(expr)
        # an expression that simplified away some inputs (x - x, or fused a + -a) must still
        # have the node's shape and dtype
        used = [x for i, x in enumerate(node.inputs) if arg(i) in node.attrs["expr"].free_symbols]
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

    DiracDelta (the derivative of a step, zero almost everywhere) is dropped. Cached: the
    layers of a deep network repeat the same expressions.
    """
    d = sp.diff(expr, arg(i)).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
    return d.subs(expr, OUT)


def _is_boolean(expr: sp.Basic) -> bool:
    return isinstance(expr, (sp.core.relational.Relational, sp.logic.boolalg.Boolean))


@lru_cache(maxsize=4096)
def _lambdify(expr: sp.Basic, n: int):
    return sp.lambdify([arg(i) for i in range(n)], expr,
                       modules=[functions.NUMPY_IMPLEMENTATIONS, "numpy"])


def from_expr(label: str, expr: sp.Basic, symbols: Mapping[sp.Symbol, Node],
              dtype: Any = None) -> Node:
    """An elementwise node computing ``expr``, whose free symbols stand for the given nodes.

    Scalar constants among the nodes are folded into the expression as numbers, and a node
    given for two symbols becomes one input. An expression that reduces to a number becomes
    a constant node.
    """
    expr = sp.sympify(expr)
    inputs: list[Node] = []
    index: dict[int, sp.Symbol] = {}
    replace: dict[sp.Symbol, sp.Basic] = {}
    for sym in sorted(expr.free_symbols, key=lambda s: s.name):
        node = symbols[sym]
        if node.op.name == "constant" and node.shape == () and np.isfinite(node.value):
            # str() of a NumPy scalar is its shortest round-trip form in its own precision:
            # a float32 0.01 stays 0.01, not 0.009999999776482582
            replace[sym] = number(float(str(node.value[()])) if node.dtype.kind == "f"
                                  else node.value.item())
            continue
        if node.id not in index:
            index[node.id] = arg(len(inputs))
            inputs.append(node)
        replace[sym] = index[node.id]
    expr = expr.xreplace(replace)
    if not inputs:
        from graphc.ops.leaves import constant

        return constant(float(expr), dtype=dtype or "float64")
    if expr in index.values():
        return inputs[list(index.values()).index(expr)]
    return make("elementwise", inputs, expr=expr, label=label)


def number(value: float | int | bool) -> sp.Basic:
    """A Python number as SymPy: integral values as Integers, so that 1.0 * g is g."""
    value = float(value)
    return sp.Integer(int(value)) if value.is_integer() else sp.Float(value)


def sum_to(g: Node, shape) -> Node:
    """Sum ``g`` over the axes that broadcasting added to reach its shape from ``shape``."""
    from graphc.ir.shapes import broadcast_axes
    from graphc.ops.api import sum as reduce_sum

    if g.shape == tuple(shape):
        return g
    leading, stretched = broadcast_axes(tuple(shape), g.shape)
    if stretched:
        g = reduce_sum(g, axis=tuple(a + len(leading) for a in stretched), keepdims=True)
    if leading:
        g = reduce_sum(g, axis=leading)
    return g
