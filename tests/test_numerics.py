"""``gc.compile(..., check_numerics=True)``: the first node whose value holds NaN or Inf raises
gc.NumericsError naming the node, its op and the user's line that declared it; with the
option off the generated code holds no check at all (it costs nothing)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import graphc as gc

LEVELS = [0, 1, 2]


def numerics_error(prog, **feeds) -> str:
    with np.errstate(all="ignore"), pytest.raises(gc.NumericsError) as err:
        prog(**feeds)
    assert isinstance(err.value, gc.GraphcError) and isinstance(err.value, FloatingPointError)
    return str(err.value)


@pytest.mark.parametrize("level", LEVELS)
def test_nan_names_the_node_its_op_and_the_users_line(level):
    x = gc.input("x", ("batch", 3))
    W = gc.param("W", (3, 2), init=1.0)
    h = x @ W
    line = inspect.currentframe().f_lineno + 1
    z = gc.log(h)  # NaN where h < 0
    out = gc.sum(z)
    prog = gc.compile([out], [x], check_numerics=True, optimize=level)
    message = numerics_error(prog, x=-np.ones((2, 3)))
    assert message.startswith("NaN produced by forward node z (op log), declared at ")
    assert message.endswith(f"test_numerics.py:{line}: z = gc.log(h)  # NaN where h < 0")


@pytest.mark.parametrize("level", LEVELS)
def test_the_first_bad_node_is_named_not_a_later_one(level):
    """exp overflows to Inf first; the NaN of Inf - Inf after it is not what is reported."""
    x = gc.input("x", (2, 3))
    e = gc.exp(x * 1000.0)
    spread = gc.sum(e, axis=1) - gc.max(e, axis=1)
    prog = gc.compile([gc.sum(spread)], [x], check_numerics=True, optimize=level)
    message = numerics_error(prog, x=np.ones((2, 3)))
    assert message.startswith("Inf produced by forward node e (op exp), declared at ")
    assert message.endswith("e = gc.exp(x * 1000.0)")


def test_a_bad_gradient_names_a_backward_node():
    """sqrt is finite at 0 but its derivative is not."""
    x = gc.input("x", (3,))
    root = gc.sqrt(x)
    out = gc.sum(root)
    line = inspect.currentframe().f_lineno + 1
    grads = gc.grad(out, [x])
    prog = gc.compile([out, *grads], [x], check_numerics=True, optimize=0)
    message = numerics_error(prog, x=np.array([1.0, 0.0, 4.0]))
    assert message.startswith("Inf produced by backward node ")
    assert f"test_numerics.py:{line}: grads = gc.grad(out, [x])" in message


def test_a_training_step_reports_the_node_before_updating_anything():
    x = gc.input("x", ("batch", 2))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W = gc.param("W", (2, 3), init=1.0)
    scores = gc.log(x @ W)
    loss = gc.softmax_cross_entropy(scores, labels)
    step = gc.compile([loss], [x, labels], optimizer=gc.SGD(0.1), check_numerics=True)
    message = numerics_error(step, x=-np.ones((4, 2)), labels=np.zeros(4, dtype=np.int64))
    assert message.startswith("NaN produced by forward node scores (op log)")
    assert np.array_equal(W.value, np.ones((2, 3)))


@pytest.mark.parametrize("level", LEVELS)
def test_off_there_is_no_check_and_values_pass_through(level):
    x = gc.input("x", (3,))
    out = gc.sum(gc.log(x))
    prog = gc.compile([out], [x], optimize=level)
    assert "_check_finite" not in prog.source and "_NODES" not in prog.source
    with np.errstate(all="ignore"):
        assert np.isnan(prog(x=np.array([1.0, -1.0, 2.0]))[0])


@pytest.mark.parametrize("level", LEVELS)
def test_on_finite_values_the_checks_change_nothing(level):
    x = gc.input("x", ("batch", 3))
    W = gc.param("W", (3, 2), seed=0)
    out = gc.mean(gc.tanh(x @ W) ** 2)
    grads = gc.grad(out, [x, W])
    checked = gc.compile([out, *grads], [x], check_numerics=True, optimize=level)
    plain = gc.compile([out, *grads], [x], optimize=level)
    assert checked.source.count("_check_finite(") > 3
    feed = np.random.default_rng(0).standard_normal((4, 3))
    for a, b in zip(checked(x=feed), plain(x=feed)):
        assert np.array_equal(a, b)
