"""The lecture examples reproduce the numbers on the slides, through the example loader, the
compiled program at every optimize level and the reference interpreter."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import run

import graphc as gc
from graphc.example import load_example

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def value_and_gradients(path: str, level: int):
    example = load_example(os.path.join(EXAMPLES, path))
    (f,) = example.outputs
    inputs = example.input_nodes
    grads = gc.grad(f, inputs)
    compiled = run(gc.compile([f, *grads], inputs, optimize=level), example.feeds)
    interpreted = gc.evaluate([f, *grads], example.feeds)
    names = [x.name for x in inputs]
    return names, compiled, interpreted


@pytest.mark.parametrize("level", [0, 1, 2])
def test_add_mul(level):
    """f = (x + y) * z at x=-2, y=5, z=-4: f = -12, df/dx = df/dy = z = -4, df/dz = q = 3."""
    names, compiled, interpreted = value_and_gradients("add_mul.py", level)
    assert names == ["x", "y", "z"]
    for values in (compiled, interpreted):
        np.testing.assert_allclose(values, [-12.0, -4.0, -4.0, 3.0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_sigmoid_neuron(level):
    names, compiled, interpreted = value_and_gradients("sigmoid_neuron.py", level)
    assert names == ["w0", "x0", "w1", "x1", "w2"]
    slide = {"f": 0.73106, "w0": -0.19661, "x0": 0.39322, "w1": -0.39322, "x1": -0.58983,
             "w2": 0.19661}
    expected = [slide["f"]] + [slide[n] for n in names]
    for values in (compiled, interpreted):
        np.testing.assert_allclose(values, expected, rtol=0, atol=1e-5)  # (5 decimals)
    # and exactly: s = sigmoid(1), ds = s (1 - s), d/dw_i = ds * x_i, d/dx_i = ds * w_i
    s = 1 / (1 + np.exp(-1.0))
    ds = s * (1 - s)
    exact = [s, -1 * ds, 2 * ds, -2 * ds, -3 * ds, ds]
    np.testing.assert_allclose(compiled, exact, rtol=1e-14)


def test_sigmoid_gate_gives_the_same_gradients():
    """The slide's second drawing: one sigmoid gate with local gradient s (1 - s)."""
    w0, x0, w1, x1, w2 = (gc.scalar(n) for n in ("w0", "x0", "w1", "x1", "w2"))
    f = gc.sigmoid(w0 * x0 + w1 * x1 + w2)
    inputs = [w0, x0, w1, x1, w2]
    feeds = dict(zip(inputs, [2.0, -1.0, -3.0, -2.0, -3.0]))
    got = run(gc.compile([f, *gc.grad(f, inputs)], inputs), feeds)
    _, expected, _ = value_and_gradients("sigmoid_neuron.py", 2)
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_add_mul_generated_code_reads_like_the_slide():
    example = load_example(os.path.join(EXAMPLES, "add_mul.py"))
    (f,) = example.outputs
    inputs = example.input_nodes
    source = gc.compile([f, *gc.grad(f, inputs)], inputs).source
    assert "def main(x, y, z):" in source
    assert "q = x + y" in source.replace("y + x", "x + y")
    assert "f = q*z" in source.replace(" * ", "*").replace("z*q", "q*z")


def test_example_loader_rejects_a_file_without_an_example(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("import graphc as gc\nx = gc.scalar('x')\n")
    with pytest.raises(gc.GraphcError, match="example"):
        load_example(path)
    with pytest.raises(gc.GraphcError, match="no example file"):
        load_example(tmp_path / "missing.py")


@pytest.mark.parametrize("level", [0, 1, 2])
def test_gates_distribute_route_and_swap(level):
    """f = 2 * (x*y + max(z, w)) at x=3, y=-4, z=2, w=-1: f = -20; the mul gate swaps
    (dx = 2y = -8, dy = 2x = 6), the max gate routes (dz = 2, dw = 0)."""
    names, compiled, interpreted = value_and_gradients("gates.py", level)
    assert names == ["x", "y", "z", "w"]
    for values in (compiled, interpreted):
        np.testing.assert_allclose(values, [-20.0, -8.0, 6.0, 2.0, 0.0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_gradients_add_at_branches(level):
    """f = (x + y) * x at x=3, y=-1: df/dx = (x + y) + x = 5 from two branches, df/dy = 3."""
    names, compiled, interpreted = value_and_gradients("branches.py", level)
    assert names == ["x", "y"]
    for values in (compiled, interpreted):
        np.testing.assert_allclose(values, [6.0, 5.0, 3.0], rtol=0, atol=1e-12)


def score_loss(path: str, level: int):
    example = load_example(os.path.join(EXAMPLES, path))
    (loss,) = example.outputs
    scores = next(n for n in example.input_nodes if n.name == "scores")
    (d_scores,) = gc.grad(loss, [scores])
    compiled = run(gc.compile([loss, d_scores], example.input_nodes, optimize=level),
                   example.feeds)
    return compiled, gc.evaluate([loss, d_scores], example.feeds)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_hinge_loss_of_the_cat_image(level):
    """Scores (cat, chair, car) = (3.2, 5.1, -1.7), label cat: L = 2.9 + 0; the violated
    margin sends +1 to chair and -1 to cat."""
    for loss, d_scores in score_loss("hinge_loss.py", level):
        assert float(loss) == pytest.approx(2.9, abs=1e-12)
        np.testing.assert_allclose(d_scores, [[-1.0, 1.0, 0.0]], atol=1e-12)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_softmax_loss_of_the_cat_image(level):
    """The same scores under softmax cross-entropy: L = 2.04, gradient p - onehot."""
    s = np.array([3.2, 5.1, -1.7])
    p = np.exp(s) / np.exp(s).sum()
    for loss, d_scores in score_loss("softmax_loss.py", level):
        assert float(loss) == pytest.approx(-np.log(p[0]), rel=1e-12)
        assert float(loss) == pytest.approx(2.04, abs=5e-3)
        np.testing.assert_allclose(d_scores, [p - [1.0, 0.0, 0.0]], rtol=1e-12, atol=1e-15)


def test_logistic_regression_separates_zeros_from_ones():
    """The lecture's 2-class softmax with scores (z, -z) learns the digits 0 and 1."""
    pytest.importorskip("sklearn")
    from graphc.train.trainer import Trainer

    example = load_example(os.path.join(EXAMPLES, "logistic_regression.py"))
    train, val, test = example.dataset().split((0.6, 0.2, 0.2), seed=0)
    trainer = Trainer(example.outputs[0], example.input_nodes, example.optimizer,
                      scores=example.scores)
    trainer.fit(train, val, epochs=5, batch_size=example.batch_size, progress=False)
    loss, accuracy = trainer.evaluate(test)
    assert accuracy >= 0.98 and loss < 0.1
