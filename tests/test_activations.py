"""Every activation of graphc.ops.functions' records (gc.relu, gc.gelu, gc.mish...) against
HIPS autograd, with each function written here from its definition: values, first and
second derivatives, at every optimize level, in float64 and (values, dtypes) float32.

Adding an activation is a record in graphc/ops/functions.py and an entry in ORACLES here:
the first test fails until both exist."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.scipy.special import erf

import graphc as gc
from graphc.ops.api import ACTIVATIONS


def _softplus(x):
    return anp.logaddexp(0.0, x)


#: Each activation from its definition, with the keyword arguments it is tried with.
ORACLES = {
    "relu": (lambda x: anp.maximum(x, 0.0), {}),
    "sigmoid": (lambda x: 1 / (1 + anp.exp(-x)), {}),
    "softplus": (_softplus, {}),
    "leaky_relu": (lambda x: anp.where(x > 0, x, 0.2 * x), {"alpha": 0.2}),
    "elu": (lambda x: anp.where(x > 0, x, 0.7 * (anp.exp(x) - 1)), {"alpha": 0.7}),
    "gelu": (lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))), {}),
    "gelu_tanh": (lambda x: 0.5 * x * (1 + anp.tanh(np.sqrt(2 / np.pi)
                                                   * (x + 0.044715 * x**3))), {}),
    "mish": (lambda x: x * anp.tanh(_softplus(x)), {}),
}
#: Away from the kinks at 0, where relu, leaky_relu and elu have no second derivative.
POINTS = np.array([-2.5, -1.1, -0.3, 0.4, 1.3, 3.0])


def test_every_activation_has_an_oracle():
    assert set(ORACLES) == set(ACTIVATIONS)
    for name in ACTIVATIONS:
        assert getattr(gc, name) is ACTIVATIONS[name] and name in gc.__all__


@pytest.mark.parametrize("level", (0, 1, 2, 3))
@pytest.mark.parametrize("name", sorted(ORACLES))
def test_values_and_two_derivatives(name, level):
    fn, kwargs = ORACLES[name]
    x = gc.input("x", (len(POINTS),))
    y = getattr(gc, name)(x, **kwargs)
    (d1,) = gc.grad(gc.sum(y), [x])
    (d2,) = gc.grad(gc.sum(d1), [x])
    got = gc.compile([y, d1, d2], [x], optimize=level)(x=POINTS)
    grad = autograd.elementwise_grad(fn)
    want = [fn(POINTS), grad(POINTS), autograd.elementwise_grad(grad)(POINTS)]
    for g, w, what in zip(got, want, ["value", "derivative", "second derivative"]):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12, err_msg=f"{name} {what}")


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_float32_stays_float32(name):
    fn, kwargs = ORACLES[name]
    x = gc.input("x", (len(POINTS),), dtype="float32")
    y = getattr(gc, name)(x, **kwargs)
    outputs = [y, *gc.grad(gc.sum(y), [x])]
    got = gc.compile(outputs, [x])(x=POINTS.astype(np.float32))
    assert [g.dtype for g in got] == [np.float32, np.float32]
    np.testing.assert_allclose(got[0], fn(POINTS), rtol=1e-5, atol=1e-6)


def test_parameters_are_checked_and_named():
    x = gc.input("x", (3,))
    with pytest.raises(gc.GraphcError, match="leaky_relu: alpha must be a finite real"):
        gc.leaky_relu(x, "a")
    with pytest.raises(TypeError, match="leaky_relu"):
        gc.leaky_relu(x, 0.1, 0.2)
    assert str(__import__("inspect").signature(gc.elu)) == "(x, alpha=1.0)"
