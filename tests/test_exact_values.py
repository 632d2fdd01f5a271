"""Regression tests for the silent wrong numbers of issue 10 that the oracle tests do not
pin already (tests/test_oracles.py has relu's mask, elu'', nested powers, leaky_relu of a
sum, exp(v)/exp(v), exp(2 log x) and activations of constants): each case at every
optimize level, against numbers worked out by hand or by NumPy directly."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import graphc as gc

LEVELS = (0, 1, 2, 3)
z = sp.Symbol("z")


def run(outputs, inputs, feeds, level):
    with np.errstate(all="ignore"):
        return gc.compile(outputs, inputs, optimize=level)(**feeds)


@pytest.mark.parametrize("level", LEVELS)
def test_a_power_of_a_power_of_a_sigmoid(level):
    """(sigmoid(x)**x)**-0.5, which stabilize printed as s**x**-0.5 (s to the x**-0.5)."""
    x = gc.input("x", (3,))
    v = np.array([0.5, 1.0, 2.0])
    s = 1 / (1 + np.exp(-v))
    (got,) = run([(gc.sigmoid(x) ** x) ** -0.5], [x], {"x": v}, level)
    np.testing.assert_allclose(got, (s**v) ** -0.5, rtol=1e-12)


@pytest.mark.parametrize("level", LEVELS)
def test_a_quotient_of_equal_exponentials_times_a_constant_array(level):
    x = gc.input("x", (2, 3))
    y = gc.sum(gc.exp(x) / gc.exp(x) * gc.constant([3.0]))
    (got,) = run([y], [x], {"x": np.ones((2, 3))}, level)
    assert got == 18.0
    (inf,) = run([y], [x], {"x": np.full((2, 3), 1000.0)}, level)
    assert np.isnan(inf)  # exp(1000)/exp(1000) is inf/inf for NumPy


@pytest.mark.parametrize("level", LEVELS)
def test_where_with_a_constant_condition(level):
    x = gc.input("x", (3,))
    y = gc.where(gc.constant(1.0) > 0, x, 0.0) + gc.where(gc.constant(-1.0) > 0, x, 2.0)
    (got, d) = run([y, *gc.grad(gc.sum(y), [x])], [x], {"x": np.arange(3.0)}, level)
    np.testing.assert_array_equal(got, np.arange(3.0) + 2)
    np.testing.assert_array_equal(d, np.ones(3))


@pytest.mark.parametrize("level", LEVELS)
def test_differences_and_products_keep_what_numpy_computes(level):
    """x - x is NaN at inf, x/x at 0, x*0 at inf; SymPy's evaluation would make 0, 1, 0."""
    x = gc.input("x", (3,))
    v = np.array([np.inf, 0.0, 2.0])
    got = run([x - x, x / x, x * 0.0], [x], {"x": v}, level)
    with np.errstate(all="ignore"):
        want = [v - v, v / v, v * 0.0]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("expr, words", [
    (sp.I * z, "not a real number"),
    (sp.oo * z, "infinity"),
    (z / 0, "infinity"),
    (sp.Integral(z, z), "call .doit()"),
    (sp.Matrix([z]), "has no NumPy code"),
    (sp.Function("f")(z), "cannot write the SymPy function f"),
    (sp.besselj(0, z), "cannot write the SymPy function besselj"),
])
def test_from_sympy_refuses_what_numpy_cannot_compute(expr, words):
    with pytest.raises(gc.GraphcError) as err:
        gc.from_sympy(expr, {z: gc.input("h", (3,))})
    assert words in str(err.value) and "from_sympy" in str(err.value)


def test_from_sympy_floor_has_a_zero_derivative():
    h = gc.input("h", (3,))
    y = gc.from_sympy(sp.floor(z) + z, {z: h})
    got = gc.compile([y, *gc.grad(gc.sum(y), [h])], [h])(h=np.array([0.5, 1.5, -2.25]))
    np.testing.assert_array_equal(got[0], [0.5, 2.5, -5.25])
    np.testing.assert_array_equal(got[1], np.ones(3))


#: User activations, their values and derivatives at -1000 and +1000 (their limits).
ACTIVATIONS = {
    "swish": (z / (1 + sp.exp(-z)), [-0.0, 1000.0], [0.0, 1.0]),
    "mish": (z * sp.tanh(sp.log(1 + sp.exp(z))), [-0.0, 1000.0], [0.0, 1.0]),
    "softsign": (z / (1 + sp.Abs(z)), [-1000 / 1001, 1000 / 1001], [1 / 1001**2, 1 / 1001**2]),
    "gelu": (0.5 * z * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (z + 0.044715 * z**3))),
             [-0.0, 1000.0], [0.0, 1.0]),
    "log-cosh": (sp.log(sp.cosh(z)), [1000 - np.log(2), 1000 - np.log(2)], [-1.0, 1.0]),
}


@pytest.mark.parametrize("level", (1, 2, 3))
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_user_activations_stay_finite_far_out(name, level):
    expr, values, slopes = ACTIVATIONS[name]
    h = gc.input("h", (2,))
    y = gc.from_sympy(expr, {z: h})
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow either
        got, d = gc.compile([y, *gc.grad(gc.sum(y), [h])], [h], optimize=level)(
            h=np.array([-1000.0, 1000.0]))
    np.testing.assert_allclose(got, values, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(d, slopes, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", [gc.relu, lambda v: gc.leaky_relu(v, 0.1), gc.elu, gc.sigmoid])
def test_every_returned_array_has_its_nodes_dtype_and_shape(act, dtype, level):
    x = gc.input("x", ("batch", 4), dtype=dtype)
    W = gc.param("W", (4, 3), dtype=dtype, seed=1)
    b = gc.param("b", (3,), dtype=dtype, init=0.1)
    h = act(x @ W + b)
    loss = gc.mean(h * h) - gc.sum(act(-h)) * 0.5
    outputs = [h, loss, *gc.grad(loss, [x, W, b])]
    prog = gc.compile(outputs, [x], optimize=level)
    for batch in (5, 2):
        got = prog(x=np.linspace(-2, 2, batch * 4, dtype=dtype).reshape(batch, 4))
        for node, value in zip(outputs, got):
            want = tuple(batch if d == "batch" else d for d in node.shape)
            assert np.asarray(value).dtype == node.dtype == np.dtype(dtype), node
            assert np.shape(value) == want, node


@pytest.mark.parametrize("level", LEVELS)
def test_max_pool_routes_an_infinite_gradient_to_the_maximum_only(level):
    """A 2x2 max pool's gradient goes to each window's maximum; the other three entries get
    0, as NumPy computes dx[argmax] += g, even where g is inf (inf * 0 would be NaN)."""
    x = gc.input("x", (1, 1, 2, 4))
    w = gc.input("w", (1, 1, 1, 2))
    xv = np.array([[[[1.0, 4.0, 0.5, 0.2], [2.0, 3.0, 0.1, 0.3]]]])
    wv = np.array([[[[np.inf, -2.0]]]])
    (dx,) = run(gc.grad(gc.sum(gc.max_pool2d(x) * w), [x]), [x, w], {"x": xv, "w": wv}, level)
    want = np.array([[[[0.0, np.inf, -2.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])
    np.testing.assert_array_equal(dx, want)
