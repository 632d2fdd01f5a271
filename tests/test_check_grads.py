"""gc.check_grads: derived gradients against central finite differences. It passes for
smooth networks (float64 and float32, first and second order), fails with a message naming
the output, the input, the entry and both numbers where the derivative is wrong (a kink,
a broken vector-Jacobian product), and leaves parameters and fed arrays as it found them."""

from __future__ import annotations

import re

import numpy as np
import pytest

import graphc as gc
from graphc.ops.registry import OPS

#: "gc.grad gives A, central differences give N": the two numbers of a failed check.
NUMBERS = re.compile(r"gc\.grad gives (\S+), central differences give (\S+) \(eps")


def numbers(err: pytest.ExceptionInfo) -> tuple[float, float]:
    """The derived and the finite-difference value a GradientCheckError reports."""
    found = NUMBERS.search(str(err.value))
    assert found, str(err.value)
    return float(found.group(1)), float(found.group(2))


def mlp(dtype: str = "float64", activation=gc.tanh):
    """A 4-6-3 network with softmax cross-entropy, its nodes and a batch of 5 to feed it."""
    rng = np.random.default_rng(0)
    x = gc.input("x", ("batch", 4), dtype=dtype)
    labels = gc.input("labels", ("batch",), dtype="int64")
    W1 = gc.param("W1", (4, 6), init=rng.standard_normal((4, 6)) * 0.7, dtype=dtype)
    b1 = gc.param("b1", (6,), init=rng.standard_normal(6) * 0.1, dtype=dtype)
    W2 = gc.param("W2", (6, 3), init=rng.standard_normal((6, 3)) * 0.7, dtype=dtype)
    b2 = gc.param("b2", (3,), init=rng.standard_normal(3) * 0.1, dtype=dtype)
    scores = activation(x @ W1 + b1) @ W2 + b2
    loss = gc.softmax_cross_entropy(scores, labels)
    feeds = {x: rng.standard_normal((5, 4)).astype(dtype), labels: rng.integers(0, 3, 5)}
    return loss, scores, [x, W1, b1, W2, b2], feeds


@pytest.mark.parametrize("activation", [gc.tanh, gc.sigmoid])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_softmax_cross_entropy_mlp_passes(activation, dtype):
    loss, scores, wrt, feeds = mlp(dtype, activation)
    gc.check_grads(loss, wrt, feeds)
    gc.check_grads([loss, scores], wrt, feeds)  # the scores through a random projection


def test_second_derivatives_of_a_smooth_function_pass():
    x = gc.input("x", (2, 3))
    W = gc.param("W", (3, 2), init=np.array([[0.3, -0.8], [1.1, 0.2], [-0.5, 0.7]]))
    y = gc.sigmoid(x) * gc.exp(-x) + gc.sum(gc.tanh(x @ W))
    gc.check_grads(y, [x, W], {x: np.array([[0.4, -1.2, 2.0], [0.0, 0.9, -0.3]])}, order=2)


def test_relu_at_its_kink_fails_naming_the_input_and_the_entry():
    z = gc.input("z", (3,))
    with pytest.raises(gc.GradientCheckError) as err:
        gc.check_grads(gc.sum(gc.relu(z)), z, {z: np.array([1.0, 0.0, -1.0])})
    assert str(err.value).startswith(
        "check_grads: the gradient of the output with respect to input 'z' disagrees with "
        "central differences at entry [1] (1 of 3 entries disagree)")
    derived, numeric = numbers(err)
    assert derived == 0.0 and numeric == pytest.approx(0.5, abs=1e-6)
    assert "> tolerance 6e-06 (atol 1e-06 + rtol 1e-05 * |central difference|)" in str(err.value)
    gc.check_grads(gc.sum(gc.relu(z)), z, {z: np.array([1.0, 0.5, -1.0])})  # away from it


def test_relu_at_its_kink_fails_through_the_projection_of_a_vector_output():
    z = gc.input("z", (2, 2))
    with pytest.raises(gc.GradientCheckError, match=r"of the output \(through a random "
                       r"projection\) with respect to input 'z' .* at entry \[0, 1\] "
                       r"\(1 of 4 entries"):
        gc.check_grads(gc.relu(z), z, {z: np.array([[1.0, 0.0], [-1.0, 2.0]])})


def test_order_2_catches_a_kink_in_the_first_derivative():
    """relu(x)^2 / 2 has the derivative relu(x), smooth enough at 0 for order 1, but its
    second derivative jumps there: the finite difference of relu gives 0.5, step(0) 0."""
    x = gc.input("x", (2,))
    y = gc.sum(gc.relu(x) * gc.relu(x) * 0.5)
    feeds = {x: np.array([0.0, 1.5])}
    gc.check_grads(y, x, feeds)
    with pytest.raises(gc.GradientCheckError, match=r"^check_grads: the second derivative "
                       r"\(gradient of a random projection of the gradient\) of the output "
                       r"with respect to input 'x' .* at entry \[0\]") as err:
        gc.check_grads(y, x, feeds, order=2)
    derived, numeric = numbers(err)
    assert derived == 0.0 and 0.25 <= abs(numeric) <= 0.75  # 0.5 * a weight in [0.5, 1.5]


@pytest.fixture
def softmax_vjp_times(monkeypatch):
    """Make softmax's vector-Jacobian product ``factor`` times what it should be."""
    cls = type(OPS["softmax"])
    right = cls.vjp

    def wrong_by(factor: float) -> None:
        monkeypatch.setattr(cls, "vjp", lambda self, node, g: [
            gx * factor for gx in right(self, node, g)])
    return wrong_by


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_wrong_vjp_fails_with_both_numbers(softmax_vjp_times, dtype):
    x = gc.input("x", ("batch", 4), dtype=dtype)
    W = gc.param("W", (4, 3), init=np.linspace(-1, 1, 12).reshape(4, 3), dtype=dtype)
    p = gc.softmax(x @ W)
    feeds = {x: np.random.default_rng(3).standard_normal((2, 4)).astype(dtype)}
    gc.check_grads(p, [x, W], feeds)
    softmax_vjp_times(1.5)
    with pytest.raises(gc.GradientCheckError, match="with respect to input 'x' disagrees "
                       r"with central differences at entry \[\d, \d\]") as err:
        gc.check_grads(p, [x, W], feeds)
    derived, numeric = numbers(err)
    assert derived == pytest.approx(1.5 * numeric, rel=1e-2 if dtype == "float32" else 1e-6)
    with pytest.raises(gc.GradientCheckError, match="with respect to param 'W' "):
        gc.check_grads(p, W, feeds)


def test_the_tolerances_decide(softmax_vjp_times):
    x = gc.input("x", (4,))
    p = gc.softmax(x)
    feeds = {x: np.array([0.3, -1.0, 2.0, 0.1])}
    softmax_vjp_times(1.001)  # 0.1% off
    with pytest.raises(gc.GradientCheckError):
        gc.check_grads(p, x, feeds)
    gc.check_grads(p, x, feeds, rtol=1e-2, atol=1e-4)


def test_each_output_is_named():
    x = gc.input("x", (2,))
    good, bad = gc.sum(gc.tanh(x)), gc.sum(gc.relu(x)).named("bad")
    with pytest.raises(gc.GradientCheckError, match="^check_grads: the gradient of output 1 "
                                                    "'bad' with respect to input 'x'"):
        gc.check_grads([good, bad], x, {x: np.array([0.0, 1.0])})


def test_parameters_and_feeds_are_left_exactly_as_they_were():
    init = np.array([[0.0, 0.5], [-0.25, 1.0]])
    W = gc.param("W", (2, 2), init=init)
    x = gc.input("x", (1, 2))
    fed = np.array([[0.3, -0.7]])
    stored, stored_bytes, init_bytes = W.value, W.value.tobytes(), init.tobytes()
    gc.check_grads(gc.sum(gc.tanh(x @ W)), [x, W], {x: fed})
    with pytest.raises(gc.GradientCheckError, match="param 'W' .* entry \\[0, 0\\]"):
        gc.check_grads(gc.relu(W), W, {}, order=2)  # W[0, 0] = 0: relu's kink
    assert W.value is stored and W.value.tobytes() == stored_bytes
    assert init.tobytes() == init_bytes
    assert fed.tolist() == [[0.3, -0.7]]


def test_a_fed_parameter_is_checked_at_its_fed_value_and_its_stored_one_kept():
    W = gc.param("W", (1, 2), init=np.array([[1.0, 2.0]]))
    y = gc.sum(gc.relu(W))
    gc.check_grads(y, W, {})  # the stored value is away from the kink
    with pytest.raises(gc.GradientCheckError, match=r"param 'W' .* at entry \[0, 1\]"):
        gc.check_grads(y, W, {W: np.array([[1.0, 0.0]])})
    assert W.value.tolist() == [[1.0, 2.0]]


def test_feeds_may_be_keyed_by_name():
    loss, _, wrt, feeds = mlp()
    gc.check_grads(loss, wrt, {node.name: value for node, value in feeds.items()})


def test_bad_arguments_are_refused():
    x = gc.input("x", (2,))
    n = gc.input("n", (2,), dtype="int64")
    y = gc.sum(gc.tanh(x))
    feeds = {x: np.zeros(2)}
    with pytest.raises(ValueError, match="order must be 1 or 2, got 3"):
        gc.check_grads(y, x, feeds, order=3)
    with pytest.raises(ValueError, match="only inputs and parameters can be moved"):
        gc.check_grads(y, gc.tanh(x), feeds)
    with pytest.raises(ValueError, match="is int64; only floating"):
        gc.check_grads(y + gc.sum(n), n, {**feeds, n: np.zeros(2, "int64")})
    with pytest.raises(gc.FeedError, match="no value fed for input 'x'"):
        gc.check_grads(y, x, {})
