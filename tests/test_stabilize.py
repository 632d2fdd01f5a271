"""The stabilize pass: each rewrite fires where it should and not where it must not, and
extreme logits give finite losses and gradients with no overflow warning."""

import warnings

import numpy as np
import pytest

import graphc as gc
from graphc.ir.graph import Graph
from graphc.ops import functions as F
from graphc.ops.elementwise import arg
from graphc.passes.stabilize import stabilize


def _stable(node):
    return stabilize(Graph((node,))).outputs[0]


def test_log_of_sigmoid_becomes_negative_softplus():
    x = gc.input("x", (3,))
    out = _stable(gc.log(gc.sigmoid(x)))
    assert out.attrs["expr"] == -F.softplus(-arg(0))
    assert out.inputs == (x,)


def test_log_of_one_minus_sigmoid_becomes_negative_softplus():
    x = gc.input("x", (3,))
    assert _stable(gc.log(1 - gc.sigmoid(x))).attrs["expr"] == -F.softplus(arg(0))


def test_log_one_plus_exp_becomes_softplus():
    x = gc.input("x", (3,))
    assert _stable(gc.log(1 + gc.exp(x))).attrs["expr"] == F.softplus(arg(0))


def test_written_out_sigmoid_becomes_sigmoid():
    x = gc.input("x", (3,))
    assert _stable(1 / (1 + gc.exp(-x))).attrs["expr"] == F.sigmoid(arg(0))


def test_log_of_softmax_becomes_log_softmax():
    s = gc.input("s", ("batch", 4))
    out = _stable(gc.log(gc.softmax(s, axis=1)))
    assert out.op.name == "log_softmax" and out.inputs == (s,) and out.attrs["axis"] == 1


def test_manual_cross_entropy_becomes_the_fused_op():
    s = gc.input("s", ("batch", 4))
    labels = gc.input("labels", ("batch",), dtype="int64")
    out = _stable(-gc.mean(gc.take(gc.log(gc.softmax(s)), labels)))
    assert out.op.name == "softmax_cross_entropy"
    log_p = out.inputs[2]
    assert out.inputs[:2] == (s, labels)
    assert log_p.op.name == "log_softmax" and log_p.inputs == (s,)


def test_cross_entropy_shares_its_log_probabilities_with_its_gradient():
    s = gc.input("s", ("batch", 4))
    labels = gc.input("labels", ("batch",), dtype="int64")
    declared = gc.softmax_cross_entropy(s, labels)
    assert declared.inputs == (s, labels)  # one node in figures of the graph as declared
    out = _stable(declared)
    assert out.inputs[:2] == (s, labels) and out.inputs[2].op.name == "log_softmax"
    assert _stable(out) is out  # once is enough
    (grad,) = gc.grad(out, [s])
    assert out.inputs[2] in gc.ir.topological_order([grad])  # the gradient reads the same
    feeds = {s: np.array([[1.0, 2.0, 0.0, -1.0], [3.0, 0.5, 0.5, 2.0]]),
             labels: np.array([1, 3])}
    p = np.exp(feeds[s]) / np.exp(feeds[s]).sum(axis=1, keepdims=True)
    want = (p - np.eye(4)[[1, 3]]) / 2
    for outputs in ([declared, *gc.grad(declared, [s])], [out, grad]):
        loss, d = gc.evaluate(outputs, feeds)
        assert loss == pytest.approx(-np.log(p[[0, 1], [1, 3]]).mean(), rel=1e-12)
        np.testing.assert_allclose(d, want, rtol=1e-12)


@pytest.mark.parametrize("build", [
    lambda x: gc.log(2 + gc.exp(x)),          # not 1 + exp
    lambda x: gc.log(gc.tanh(x) + 2),         # no pattern at all
    lambda x: gc.exp(gc.log(gc.sigmoid(x) + 1)),
])
def test_rewrites_do_not_fire_on_lookalikes(build):
    x = gc.input("x", (3,))
    node = build(x)
    assert _stable(node) is node


def test_cross_entropy_over_the_wrong_axis_is_left_alone():
    s = gc.input("s", (4, 3))
    labels = gc.input("labels", (4,), dtype="int64")
    node = -gc.mean(gc.take(gc.log_softmax(s, axis=0), labels))
    assert _stable(node).op.name == "elementwise"


def test_rewritten_graph_has_the_same_values():
    x = gc.input("x", (5,))
    y = gc.log(gc.sigmoid(x)) + gc.log(1 + gc.exp(x)) + 1 / (1 + gc.exp(-x))
    feeds = {x: np.linspace(-3, 3, 5)}
    (before,) = gc.evaluate([y], feeds)
    (after,) = gc.evaluate([_stable(y)], feeds)
    np.testing.assert_allclose(after, before, rtol=1e-12)


def _train_step(loss_of, optimizer=None):
    s = gc.input("s", ("batch", 3))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W = gc.param("W", (3, 3), init=np.eye(3))
    loss = loss_of(s @ W, labels)
    return gc.compile([loss], [s, labels], optimizer=optimizer or gc.SGD(0.1)), W


@pytest.mark.parametrize("loss_of", [
    gc.softmax_cross_entropy,
    lambda z, y: -gc.mean(gc.take(gc.log(gc.softmax(z)), y)),
    lambda z, y: -gc.mean(gc.take(gc.log_softmax(z), y)),
], ids=["op", "log-softmax-written-out", "log_softmax"])
def test_logits_of_1000_give_finite_loss_and_gradients(loss_of):
    prog, W = _train_step(loss_of)
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            (loss,) = prog(s=logits, labels=np.array([1, 0]))
    assert np.isfinite(loss) and loss == pytest.approx(2000.0, rel=1e-6)
    assert np.all(np.isfinite(W.value))


def test_binary_cross_entropy_written_out_is_stable():
    x = gc.input("x", ("batch",))
    t = gc.input("t", ("batch",))
    w = gc.param("w", (), init=1.0)
    z = w * x
    bce = -gc.mean(t * gc.log(gc.sigmoid(z)) + (1 - t) * gc.log(1 - gc.sigmoid(z)))
    prog = gc.compile([bce], [x, t], optimizer=gc.SGD(0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            (loss,) = prog(x=np.array([1000.0, -1000.0]), t=np.array([0.0, 1.0]))
    assert loss == pytest.approx(1000.0)
    # d loss / d w = mean(x * (sigmoid(wx) - t)) = (1000 * 1 + -1000 * (0 - 1)) / 2 = 1000
    assert w.value == pytest.approx(1.0 - 0.1 * 1000.0)


def test_optimize_0_keeps_the_graph_as_written():
    x = gc.input("x", (2,))
    y = gc.sum(gc.log(gc.sigmoid(x)))
    prog = gc.compile([y], [x], optimize=0)
    assert "np.log" in prog.source and "logaddexp" not in prog.source
    stable = gc.compile([y], [x], optimize=1)
    assert "np.logaddexp" in stable.source and "np.log(" not in stable.source
