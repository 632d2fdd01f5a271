"""The expression printer against an independent evaluation of the same expressions.

Random expression trees are built twice, from one description: as a SymPy expression that
graphc's printer writes as NumPy code, and as a NumPy function composed in this file from
each function's definition (relu as np.maximum(x, 0), sigmoid as 1/(1 + exp(-x)), a power
as np.power). The oracle shares no code with the printer, so a precedence slip, a mask that
turns boolean or a branch in the wrong dtype shows as a different number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from graphc.ops import functions as F
from graphc.ops.expr_printer import HELPERS, UnprintableError, check_printable, numpy_code

X = [sp.Symbol(f"x{i}", real=True) for i in range(3)]
ALPHA = 0.25
A = sp.Float(ALPHA)


def _where_positive(c, a, b):
    return np.where(c > 0, a, b)


#: (SymPy function, its NumPy definition) for every function graphc prints.
UNARY = [
    (sp.exp, np.exp), (sp.tanh, np.tanh), (sp.Abs, np.abs), (sp.sqrt, np.sqrt),
    (sp.log, np.log), (lambda u: -u, np.negative),
    (F.relu, lambda u: np.maximum(u, 0.0)),
    (F.sigmoid, lambda u: 1 / (1 + np.exp(-u))),
    (F.softplus, lambda u: np.log1p(np.exp(-np.abs(u))) + np.maximum(u, 0.0)),
    (F.step, lambda u: _where_positive(u, 1.0, 0.0)),
    (lambda u: F.leaky_relu(u, A), lambda u: _where_positive(u, u, ALPHA * u)),
    (lambda u: F.elu(u, A), lambda u: _where_positive(u, u, ALPHA * np.expm1(u))),
    (lambda u: F.leaky_slope(u, A), lambda u: _where_positive(u, 1.0, ALPHA)),
    (lambda u: F.elu_slope(u, A), lambda u: _where_positive(u, 1.0, u + ALPHA)),
    (sp.erf, np.vectorize(math.erf)),
]
BINARY = [
    (lambda a, b: a + b, np.add), (lambda a, b: a * b, np.multiply),
    (lambda a, b: a - b, np.subtract), (lambda a, b: a / b, np.divide),
    (sp.Max, np.maximum), (sp.Min, np.minimum),
    (lambda a, b: sp.Piecewise((a, b > 0), (b, True)), lambda a, b: _where_positive(b, a, b)),
    # a positive base to any power
    (lambda a, b: (F.sigmoid(a) + 1) ** b, lambda a, b: (1 / (1 + np.exp(-a)) + 1) ** b),
]
NUMBERS = [(sp.Integer(2), 2.0), (sp.Integer(-3), -3.0), (sp.Rational(1, 3), 1 / 3),
           (sp.Float(0.1), 0.1), (sp.Float(-1.5), -1.5), (sp.S.Half, 0.5), (sp.pi, np.pi)]
EXPONENTS = [(sp.Integer(2), 2.0), (sp.Integer(-1), -1.0), (sp.S.Half, 0.5),
             (-sp.S.Half, -0.5), (sp.Float(1.5), 1.5), (sp.Rational(-3, 2), -1.5),
             (sp.Integer(3), 3.0)]


def _symbol(i: int):
    return X[i], lambda v: v[i]


def _number(pair):
    value = pair[1]
    return pair[0], lambda v: value


def _built(build):
    """A combinator's (expression, function) pair, or None where SymPy made a number that is
    not real of a constant subtree (sqrt(-3)), which comparisons then refuse."""
    def combine(t):
        try:
            expr, fn = build(t)
        except (TypeError, ValueError):
            return None
        return None if expr.has(sp.zoo, sp.I, sp.oo, -sp.oo, sp.nan) else (expr, fn)
    return combine


@_built
def _unary(t):
    (fn, ref), (e, f) = t
    return fn(e), lambda v: ref(f(v))


@_built
def _binary(t):
    (fn, ref), (e1, f1), (e2, f2) = t
    return fn(e1, e2), lambda v: ref(f1(v), f2(v))


@_built
def _power(t):
    (e, f), (k, kv) = t
    return sp.Pow(e, k), lambda v: np.power(f(v), kv)


def _expressions():
    """(SymPy expression, NumPy function of the values of X) pairs."""
    leaves = st.integers(0, 2).map(_symbol) | st.sampled_from(NUMBERS).map(_number)

    def extend(children):
        return (st.tuples(st.sampled_from(UNARY), children).map(_unary)
                | st.tuples(st.sampled_from(BINARY), children, children).map(_binary)
                | st.tuples(children, st.sampled_from(EXPONENTS)).map(_power)
                ).filter(lambda p: p is not None)

    return st.recursive(leaves, extend, max_leaves=8).filter(lambda p: bool(p[0].free_symbols))


def _run_printed(code: str, values: dict[str, np.ndarray]) -> np.ndarray:
    scope: dict = {"np": np}
    exec("import math", scope)
    for helper in ("sigmoid", "erf"):  # the helpers the generated module defines for itself
        exec(HELPERS[helper], scope)
    return eval(code, scope, values)  # noqa: S307 -- our own printer's output, in a test


@settings(max_examples=examples(300), deadline=None)
@given(_expressions(), st.integers(0, 2**32 - 1))
def test_printed_code_computes_what_the_definitions_compute(pair, seed):
    """SymPy's own evaluation may rewrite (exp(-log(x)) is 1/x for it), so the definitions
    are compared where SymPy kept the expression's structure: the values agree wherever the
    SymPy form is the composition the oracle computes."""
    expr, oracle = pair
    rng = np.random.default_rng(seed)
    values = [rng.uniform(-2, 2, 5) for _ in X]
    code = numpy_code(expr, floats=X)
    with np.errstate(all="ignore"):
        expected = np.broadcast_to(oracle(values), (5,))
        got = np.broadcast_to(_run_printed(code, {s.name: v for s, v in zip(X, values)}), (5,))
    assert got.dtype == np.float64, code
    finite = np.isfinite(expected) & np.isfinite(got)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-7, atol=1e-9,
                               err_msg=f"{expr}\nprinted as {code}")


@settings(max_examples=examples(150), deadline=None)
@given(_expressions())
def test_printed_code_keeps_float32(pair):
    """Masks, number branches and literals never promote a float32 expression."""
    expr, _ = pair
    values = {s.name: np.linspace(-2, 2, 5, dtype=np.float32) for s in X}
    code = numpy_code(expr, dtype="float32", floats=X)
    with np.errstate(all="ignore"):
        got = np.asarray(_run_printed(code, values))
    assert got.dtype == np.float32, f"{expr} printed as {code} gives {got.dtype}"


@pytest.mark.parametrize("expr, code", [
    (F.leaky_relu(X[0] + X[1], A), "np.where(x0 + x1 > 0, x0 + x1, 0.25*(x0 + x1))"),
    (sp.Pow(sp.Pow(X[0], sp.Float(1.5), evaluate=False), sp.Float(0.5), evaluate=False),
     "(x0**1.5)**0.5"),
    (sp.Pow(X[1], sp.Pow(X[0], -1)), "x1**(1/x0)"),
    (sp.Pow(sp.Pow(X[0], -1, evaluate=False), sp.Float(1.5), evaluate=False), "(1/x0)**1.5"),
    (F.step(X[0]) + F.step(X[1]),
     "(x0 > 0).astype(np.float64) + (x1 > 0).astype(np.float64)"),
    (X[2] * F.step(X[0]), "x2*(x0 > 0)"),
    (-F.step(X[0]), "-(x0 > 0).astype(np.float64)"),
])
def test_precedence_and_masks_print_as_python_reads_them(expr, code):
    assert numpy_code(expr, floats=X) == code


def test_names_are_printed_not_substituted():
    """Two inputs that are the same array print as two names: no x/x -> 1 while printing."""
    assert numpy_code(X[0] / X[1], {X[0]: "exp1", X[1]: "exp1"}) == "exp1/exp1"


@pytest.mark.parametrize("expr", [sp.I * X[0], sp.Integral(X[0], X[0]),
                                  sp.Derivative(sp.floor(X[0]), X[0]), sp.zoo * X[0],
                                  sp.Function("f")(X[0]), sp.EulerGamma * X[0]])
def test_what_has_no_numpy_code_is_refused(expr):
    with pytest.raises(UnprintableError):
        check_printable(expr)
