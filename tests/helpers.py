"""Shared test helpers: central finite differences, a gradient checker that compares autodiff
(through the reference interpreter and through compiled programs) with them, Hypothesis
strategies for shapes, and value generators that keep inputs away from kinks and poles."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc
from graphc.ir.graph import leaves

#: Multiplies every test's ``max_examples`` (the "nightly" profile searches ten times more).
SCALE = 10 if os.environ.get("GRAPHC_HYPOTHESIS_PROFILE") == "nightly" else 1

#: How close the generated code must be to the interpreter (float64, same math).
CODEGEN_RTOL = 1e-10


def examples(n: int) -> int:
    """A test's number of Hypothesis examples, scaled by the active profile."""
    return n * SCALE


# --- Hypothesis strategies -------------------------------------------------------------------
seeds = st.integers(0, 2**32 - 1)


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcast_pair(min_dims: int = 0, max_dims: int = 3, max_side: int = 4):
    """Two shapes that broadcast together (the input shapes of a binary op)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims,
                                             max_side=max_side).map(lambda s: s.input_shapes)


# --- values ----------------------------------------------------------------------------------
def normal(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    return rng.standard_normal(shape) * scale


def positive(rng: np.random.Generator, shape, lo: float = 0.5, hi: float = 2.0) -> np.ndarray:
    return rng.uniform(lo, hi, shape)


def away_from_zero(rng: np.random.Generator, shape, lo: float = 0.2,
                   hi: float = 2.0) -> np.ndarray:
    """Values of either sign with |v| >= lo: far from a kink at 0 compared with a FD step."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(lo, hi, shape)


def distinct(rng: np.random.Generator, shape, spacing: float = 0.25) -> np.ndarray:
    """Values pairwise at least ``spacing`` apart (no ties for max), in random order."""
    n = int(np.prod(shape, dtype=np.int64))
    return (rng.permutation(n) - n / 2).reshape(shape) * spacing + rng.uniform(0, 0.01)


def labels_for(rng: np.random.Generator, batch: int, classes: int) -> np.ndarray:
    return rng.integers(0, classes, size=batch).astype(np.int64)


# --- finite differences and the gradient checker ------------------------------------------------
def numeric_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``array``, perturbed in place."""
    grad = np.zeros(array.shape, dtype=np.float64)
    flat = array.reshape(-1)
    assert np.shares_memory(flat, array) or array.size == 0, "need a contiguous array"
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        grad.reshape(-1)[i] = (up - down) / (2 * eps)
    return grad


def assert_close(actual, expected, *, rtol: float, atol: float = 0.0, what: str = "") -> None:
    """allclose with ``atol`` scaled by the size of ``expected``, shapes and dtypes checked."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def input_nodes(outputs: Iterable[gc.Node]) -> list[gc.Node]:
    """The input leaves that ``outputs`` read, in graph order."""
    return leaves(list(outputs), "input")


def run(prog, feeds: Mapping[gc.Node, np.ndarray]) -> list[np.ndarray]:
    """Call a program with feeds given by node (as ``gc.evaluate`` takes them)."""
    return prog(**{n.name: v for n, v in feeds.items()})


def scalarize(out: gc.Node, feeds: dict, rng: np.random.Generator) -> gc.Node:
    """``out`` itself if it is a scalar, else sum(out * R) with R a random weighting fed as an
    input (added to ``feeds``), so every entry of a non-scalar op gets its own weight."""
    if out.shape == ():
        return out
    (value,) = gc.evaluate([out], feeds)
    weights = gc.input("random_weights", out.shape)
    feeds[weights] = rng.standard_normal(value.shape)
    return gc.sum(out * weights)


def check_gradients(out: gc.Node, wrt: Sequence[gc.Node], feeds: Mapping[gc.Node, object], *,
                    rtol: float = 1e-6, atol: float = 1e-7, eps: float = 1e-6,
                    levels: Sequence[int] = (0, 2), seed: int = 0) -> list[np.ndarray]:
    """Check the gradients of ``out`` (scalarized) with respect to ``wrt`` (inputs or params)
    against central finite differences, both as ``gc.evaluate`` computes the gradient nodes and
    as the compiled program does at each optimize level. Returns the numeric gradients."""
    rng = np.random.default_rng(seed)
    feeds = {n: np.array(v, dtype=n.dtype) for n, v in feeds.items()}
    y = scalarize(out, feeds, rng)
    grads = gc.grad(y, list(wrt))
    assert [g.shape for g in grads] == [x.shape for x in wrt]

    def f() -> float:
        return float(gc.evaluate([y], feeds)[0])

    def storage(x: gc.Node) -> np.ndarray:
        return feeds[x] if x.op.name == "input" else x.value

    value = f()
    numeric = [numeric_gradient(f, storage(x), eps) for x in wrt]
    interpreted = gc.evaluate(grads, feeds)
    for x, num, got in zip(wrt, numeric, interpreted):
        assert np.asarray(got).dtype == np.float64, f"d/d{x.name}: dtype {got.dtype}"
        assert_close(got, num, rtol=rtol, atol=atol, what=f"interpreter d/d{x.name}")
    inputs = [n for n in feeds if n.op.name == "input"]
    for level in levels:
        prog = gc.compile([y, *grads], inputs, optimize=level)
        got_value, *compiled = run(prog, feeds)
        assert_close(got_value, value, rtol=CODEGEN_RTOL, atol=1e-12,
                     what=f"optimize={level} value")
        for x, num, ref, got in zip(wrt, numeric, interpreted, compiled):
            what = f"optimize={level} d/d{x.name}"
            assert_close(got, ref, rtol=CODEGEN_RTOL, atol=1e-12, what=what + " vs interpreter")
            assert_close(got, num, rtol=rtol, atol=atol, what=what + " vs finite differences")
    return numeric
