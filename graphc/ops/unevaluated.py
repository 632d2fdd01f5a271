"""Building SymPy expressions without SymPy's automatic evaluation, node by node.

Composing expressions as they are written (``x0/x1`` with both symbols one array stays
``x0/x1``, not ``1``) lets graphc see every operand before SymPy simplifies
(graphc.ops.elementwise.faithful). SymPy's own switch, ``with sp.evaluate(False)``, is a
global flag whose every change clears all of SymPy's caches: at each node built and fused,
that made compiling a deep network three times slower. Here each rebuilt node is made with
``evaluate=False`` itself, and the caches stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sympy as sp


def rebuild(func: type, args: Iterable[sp.Basic]) -> sp.Basic:
    """``func(*args)`` unevaluated, where ``func`` takes ``evaluate=`` (Add, Mul, Pow,
    functions, relations, Piecewise); plainly where it has nothing to evaluate (a Tuple, a
    Piecewise's (expression, condition) pair)."""
    args = tuple(args)
    try:
        return func(*args, evaluate=False)
    except TypeError:
        return func(*args)


def substitute(expr: sp.Basic, mapping: Mapping[sp.Basic, sp.Basic]) -> sp.Basic:
    """``expr.xreplace(mapping)`` (all at once, so x0 -> f(x1) and x1 -> x0 do not
    interfere), with every node the replacement touches left unevaluated."""
    if expr in mapping:
        return mapping[expr]
    if not expr.args:
        return expr
    args = [substitute(a, mapping) for a in expr.args]
    if all(a is b for a, b in zip(args, expr.args)):
        return expr
    return rebuild(expr.func, args)
