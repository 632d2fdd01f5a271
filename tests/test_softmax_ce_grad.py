"""The softmax cross-entropy gradient with no one-hot matrix (``softmax_cross_entropy_grad``):
the generated step's code, its values where the upstream gradient, a learning rate and a
fixed batch are folded into it or not, its second derivatives, and the labels' range check."""

import numpy as np
import pytest

import graphc as gc

S = np.array([[1.0, 2.0, 0.0, -1.0], [3.0, 0.5, 0.5, 2.0], [-2.0, 0.0, 4.0, 1.0]])
LABELS = np.array([1, 3, 2])


def _want(scale: float) -> np.ndarray:
    p = np.exp(S) / np.exp(S).sum(axis=1, keepdims=True)
    return scale * (p - np.eye(4)[LABELS]) / len(S)


def test_the_step_writes_the_gradient_over_log_p_with_no_one_hot_matrix() -> None:
    s = gc.input("s", ("batch", 4))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W = gc.param("W", (4, 4), init=np.eye(4))
    loss = gc.softmax_cross_entropy(s @ W, labels)
    prog = gc.compile([loss], [s, labels], optimizer=gc.SGD(0.5))
    main = prog.source[prog.source.index("def main("):]
    assert "g_one_hot" not in main and ".fill(0)" not in main and "np.eye" not in main
    assert "log_p_labels = log_p[np.arange(batch), labels]" in main
    assert "loss = -log_p_labels.sum() / batch" in main
    assert "np.exp(log_p, out=log_p)" in main
    assert "log_p[np.arange(batch), labels] = np.expm1(log_p_labels)" in main
    assert "np.multiply(log_p, 0.5/batch, out=log_p)" in main  # lr folded into the factor
    prog(s=S, labels=LABELS)
    np.testing.assert_allclose(W.value, np.eye(4) - 0.5 * S.T @ _want(1.0), rtol=1e-12)


@pytest.mark.parametrize("optimize", [0, 1, 2])
@pytest.mark.parametrize("batch", ["batch", 3])
def test_a_traced_upstream_gradient_and_a_fixed_batch(optimize, batch) -> None:
    s = gc.input("s", (batch, 4))
    labels = gc.input("labels", (batch,), dtype="int64")
    w = gc.input("w", ())
    loss = w * gc.softmax_cross_entropy(s, labels)
    (d,) = gc.grad(loss, [s])
    prog = gc.compile([loss, d], [s, labels, w], optimize=optimize)
    value, grad = prog(s=S, labels=LABELS, w=2.5)
    np.testing.assert_allclose(grad, _want(2.5), rtol=1e-12)
    np.testing.assert_allclose(gc.evaluate([d], {s: S, labels: LABELS, w: 2.5})[0], _want(2.5),
                               rtol=1e-12)


def test_second_derivatives_through_the_gradient() -> None:
    """d/dw of sum(r * d loss/ds) with d loss/ds = w (p - onehot) / B is sum(r (p - onehot)) / B;
    d/ds of it is the softmax's Jacobian applied to r, times w / B."""
    s = gc.input("s", (3, 4))
    labels = gc.input("labels", (3,), dtype="int64")
    w = gc.input("w", ())
    r = np.arange(12.0).reshape(3, 4) / 7 - 0.5
    (d,) = gc.grad(w * gc.softmax_cross_entropy(s, labels), [s])
    inner = gc.sum(d * gc.constant(r))
    d_w, d_s = gc.grad(inner, [w, s])
    got_w, got_s = gc.evaluate([d_w, d_s], {s: S, labels: LABELS, w: 2.5})
    assert got_w == pytest.approx((r * _want(1.0)).sum(), rel=1e-12)
    p = np.exp(S) / np.exp(S).sum(axis=1, keepdims=True)
    want_s = 2.5 / 3 * p * (r - (r * p).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got_s, want_s, rtol=1e-10, atol=1e-14)


def test_the_labels_of_a_gradient_alone_are_range_checked() -> None:
    s = gc.input("s", ("batch", 4))
    labels = gc.input("labels", ("batch",), dtype="int64")
    (d,) = gc.grad(gc.softmax_cross_entropy(s, labels), [s])
    prog = gc.compile([d], [s, labels])
    np.testing.assert_allclose(prog(s=S, labels=LABELS)[0], _want(1.0), rtol=1e-12)
    for bad in ([1, 4, 2], [1, -1, 2]):
        with pytest.raises(gc.FeedError, match="label"):
            prog(s=S, labels=np.array(bad))
