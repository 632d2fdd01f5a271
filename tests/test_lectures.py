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
