"""Stable forms of elementwise expressions: rewrites of SymPy expressions that keep values
and derivatives finite where the math is (at +-1000, say), each a small named function.

The stabilize pass applies them to the graph's expressions; autodiff differentiates the
stable form of every expression, so that even at optimize=0 the derivative SymPy derives
for a user's activation is the one that stays finite (swish' as s + z*s*(1 - s), not
exp(-z)/(1 + exp(-z))**2, which is inf/inf at z = -1000).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import sympy as sp

from graphc.ops import functions as F

_u = sp.Wild("u")


def log_of_sigmoid(expr: sp.Basic) -> sp.Basic:
    """log(sigmoid(u)) -> -softplus(-u) and log(1 - sigmoid(u)) -> -softplus(u)."""
    expr = expr.replace(sp.log(F.sigmoid(_u)), -F.softplus(-_u))
    return expr.replace(sp.log(1 - F.sigmoid(_u)), -F.softplus(_u))


def log_one_plus_exp(expr: sp.Basic) -> sp.Basic:
    """log(1 + exp(u)) -> softplus(u), which never overflows."""
    return expr.replace(sp.log(1 + sp.exp(_u)), F.softplus(_u))


def reciprocal_of_one_plus_exp(expr: sp.Basic) -> sp.Basic:
    """1 / (1 + exp(-u)) -> sigmoid(u): the lecture's neuron, written out, made stable."""
    return expr.replace(1 / (1 + sp.exp(_u)), F.sigmoid(-_u))


def log_of_cosh(expr: sp.Basic) -> sp.Basic:
    """log(cosh(u)) -> |u| + softplus(-2|u|) - log(2): cosh overflows from |u| = 711 on,
    the log-cosh loss does not (its derivative becomes sign(u)*(1 - 2 sigmoid(-2|u|)),
    which is tanh(u))."""
    return expr.replace(sp.log(sp.cosh(_u)),
                        lambda u: sp.Abs(u) + F.softplus(-2 * sp.Abs(u)) - sp.log(2))


#: Rewrites of elementwise SymPy expressions, tried in this order.
EXPRESSION_REWRITES: list[Callable[[sp.Basic], sp.Basic]] = [
    reciprocal_of_one_plus_exp, log_of_sigmoid, log_one_plus_exp, log_of_cosh,
]


def may_match(expr: sp.Basic) -> bool:
    """Every pattern starts with a log or a reciprocal: a cheap test before matching."""
    return any(isinstance(e, sp.log) or (isinstance(e, sp.Pow) and e.exp == -1)
               for e in sp.preorder_traversal(expr))


@lru_cache(maxsize=4096)
def stable_form(expr: sp.Basic) -> sp.Basic:
    """``expr`` after every expression rewrite (cached: deep networks repeat expressions)."""
    if not may_match(expr):
        return expr
    for fn in EXPRESSION_REWRITES:
        expr = fn(expr)
    return expr
