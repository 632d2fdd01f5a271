"""The gemm pass (optimize=3): SGD updates folded into their weight-gradient products, one
BLAS gemm call with beta=1 each, on NumPy's own BLAS. The helper must compute exactly what
NumPy computes, for every layout it is handed; the pass must fire only where it is safe."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import examples, labels_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ops import blas
from graphc.passes import gemm as gemm_pass


@pytest.fixture
def fold_every_size(monkeypatch):
    """Fold updates of any size (the pass leaves small targets alone in real programs)."""
    monkeypatch.setattr(gemm_pass, "MIN_SIZE", 1)


def layouts(rng, rows: int, cols: int, dtype) -> dict[str, np.ndarray]:
    """One matrix stored every way the helper may see it."""
    m = rng.standard_normal((rows, cols)).astype(dtype)
    wide = rng.standard_normal((rows, cols + 3)).astype(dtype)
    wide[:, :cols] = m
    return {"row-major": m, "transposed view": np.ascontiguousarray(m.T).T,
            "rows of a wider array": wide[:, :cols], "every other row": np.repeat(m, 2, 0)[::2],
            "broadcast": np.broadcast_to(m[:1], m.shape) if rows > 1 else m}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha, beta", [(-1.0, 1.0), (1.0, 0.0), (0.5, 2.0)])
def test_gemm_equals_numpy_for_every_layout(dtype, alpha, beta) -> None:
    rng = np.random.default_rng(0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a_kind, a in layouts(rng, 5, 7, dtype).items():
        for b_kind, b in layouts(rng, 7, 3, dtype).items():
            c = rng.standard_normal((5, 3)).astype(dtype)
            want = alpha * (a.astype(np.float64) @ b) + beta * c
            out = blas._gemm(a, b, c, alpha, beta)
            assert out is c, "gemm must write into c"
            np.testing.assert_allclose(c, want, rtol=tol, atol=tol,
                                       err_msg=f"a {a_kind}, b {b_kind}")


def test_gemm_reaches_numpy_blas_on_this_machine() -> None:
    """NumPy's wheels bundle OpenBLAS: the helper finds it (else O3 only warns)."""
    assert blas.numpy_blas_found()
    assert set(blas._GEMM) == {"f", "d"}


def test_gemm_falls_back_to_matmul_without_blas_and_for_odd_operands(monkeypatch) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((6, 4))
    c = rng.standard_normal((4, 4))
    want = c - a @ b
    blas._gemm(a, b, c, -1.0, 1.0)
    np.testing.assert_allclose(c, want, rtol=1e-12)
    # c overlapping an operand: BLAS may not read what it writes, the fallback may
    square = rng.standard_normal((4, 4))
    want = square - square.T @ b[:4]
    blas._gemm(square.T, b[:4], square, -1.0, 1.0)
    np.testing.assert_allclose(square, want, rtol=1e-12)
    # mixed dtypes and no BLAS at all
    c32 = c.astype(np.float32)
    want = c32 + (a @ b).astype(np.float32)
    blas._gemm(a, b, c32, 1.0, 1.0)
    np.testing.assert_allclose(c32, want, rtol=1e-6, atol=1e-6)
    monkeypatch.setattr(blas, "_GEMM", {})
    want = 2.0 * c + a @ b
    blas._gemm(a, b, c, 1.0, 2.0)
    np.testing.assert_allclose(c, want, rtol=1e-12)


def gemm_calls(source: str) -> int:
    """How many statements of the step call the gemm helper."""
    return len(re.findall(r"^    _gemm\(", source, re.M))


def mlp(dtype: str = "float64", hidden: int = 16):
    x = gc.input("x", ("batch", 8), dtype=dtype)
    labels = gc.input("labels", ("batch",), dtype="int64")
    W1 = gc.param("W1", (8, hidden), seed=1, dtype=dtype)
    b1 = gc.param("b1", (hidden,), init="zeros", dtype=dtype)
    W2 = gc.param("W2", (hidden, 4), seed=2, dtype=dtype)
    h1 = gc.relu(x @ W1 + b1)
    return gc.softmax_cross_entropy(h1 @ W2, labels), [x, labels]


def train(prog, steps: int = 5, batch: int = 6, dtype: str = "float64") -> list[float]:
    rng = np.random.default_rng(3)
    return [float(prog(x=rng.standard_normal((batch, 8)).astype(dtype),
                       labels=labels_for(rng, batch, 4))[0]) for _ in range(steps)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_optimize_3_trains_as_optimize_2(fold_every_size, dtype) -> None:
    plain = gc.compile(*mlp(dtype), optimizer=gc.SGD(0.1), optimize=2)
    folded = gc.compile(*mlp(dtype), optimizer=gc.SGD(0.1), optimize=3)
    assert gemm_calls(folded.source) == 2 and gemm_calls(plain.source) == 0
    assert "W1 -= x.T @ g_relu1" in folded.source.replace("# ", "")
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(train(folded, dtype=dtype), train(plain, dtype=dtype), rtol=rtol)
    for name, value in plain.params.items():
        np.testing.assert_allclose(folded.params[name], value, rtol=rtol, atol=rtol, err_msg=name)


def test_unfolded_lr_becomes_alpha(fold_every_size) -> None:
    prog = gc.compile(*mlp(), optimizer=gc.SGD(0.25), memory=True, passes=[
        "stabilize", "cse", "fuse", "simplify", "gemm"])
    assert "alpha=-0.25" in prog.source
    reference = gc.compile(*mlp(), optimizer=gc.SGD(0.25), optimize=0)
    np.testing.assert_allclose(train(prog), train(reference), rtol=1e-12)


def test_small_targets_keep_the_plain_update() -> None:
    loss, inputs = mlp()
    assert gemm_calls(gc.compile([loss], inputs, optimizer=gc.SGD(0.1), optimize=3).source) == 0
    big, inputs = mlp(hidden=2**16 // 8)  # W1 is (8, 8192): 65,536 elements
    source = gc.compile([big], inputs, optimizer=gc.SGD(0.1), optimize=3).source
    assert gemm_calls(source) == 1 and "flat_params -= d_all" in source  # b1, W2, b2 at once


def test_no_fold_where_gemm_would_read_a_parameter(fold_every_size) -> None:
    """d_W = P.T @ g with P a parameter: P's own update may run first, so W's update
    must read the gradient computed in the backward section."""
    def build(optimize: int):
        x = gc.input("x", (3, 2))
        P = gc.param("P", (3, 4), seed=0)
        W = gc.param("W", (4, 2), seed=1)
        loss = gc.sum(gc.tanh(P @ W) * x)  # d_W = P.T @ g, and P is updated too
        return gc.compile([loss], [x], optimizer=gc.SGD(0.1), optimize=optimize)

    prog, reference = build(3), build(0)
    assert gemm_calls(prog.source) == 0  # each product reads the other parameter
    xv = np.random.default_rng(0).standard_normal((3, 2))
    for _ in range(3):
        np.testing.assert_allclose(prog(x=xv)[0], reference(x=xv)[0], rtol=1e-12)
    for name, value in reference.params.items():
        np.testing.assert_allclose(prog.params[name], value, rtol=1e-12, err_msg=name)


def test_no_fold_for_momentum_or_a_shared_product(fold_every_size) -> None:
    momentum = gc.compile(*mlp(), optimizer=gc.Momentum(0.1, 0.9), optimize=3)
    assert gemm_calls(momentum.source) == 0
    reference = gc.compile(*mlp(), optimizer=gc.Momentum(0.1, 0.9), optimize=0)
    np.testing.assert_allclose(train(momentum), train(reference), rtol=1e-12)


def test_pass_warns_and_keeps_the_graph_without_numpy_blas(monkeypatch) -> None:
    monkeypatch.setattr(blas, "_GEMM", {})
    loss, inputs = mlp(hidden=2**16 // 8)
    with pytest.warns(UserWarning, match="gemm pass found no BLAS"):
        prog = gc.compile([loss], inputs, optimizer=gc.SGD(0.1), optimize=3)
    assert gemm_calls(prog.source) == 0


def test_saved_optimize_3_module_runs_with_numpy_only(fold_every_size, tmp_path) -> None:
    loss, inputs = mlp()
    prog = gc.compile([loss], inputs, optimizer=gc.SGD(0.1), optimize=3)
    prog.save(tmp_path / "step.py")
    rng = np.random.default_rng(5)
    xv, lv = rng.standard_normal((6, 8)), labels_for(rng, 6, 4)
    np.savez(tmp_path / "feeds.npz", x=xv, labels=lv)
    script = (
        "import sys, numpy as np\n"
        "sys.modules['graphc'] = None; sys.modules['scipy'] = None\n"  # importing them fails
        "import step\n"
        "f = np.load('feeds.npz')\n"
        "print(repr(float(step.main(f['x'], f['labels'])[0])), repr(float(step.W1.sum())))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    loss_value, w1_sum = (float(v) for v in done.stdout.split())
    assert loss_value == pytest.approx(float(prog(x=xv, labels=lv)[0]), rel=1e-12)
    assert w1_sum == pytest.approx(float(prog.params["W1"].sum()), rel=1e-12)


@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(widths=st.lists(st.integers(1, 5), min_size=1, max_size=3), batch=st.integers(1, 4),
       lr=st.sampled_from([0.5, 0.01]), fold_lr=st.booleans(), seed=st.integers(0, 2**16))
def test_random_networks_train_alike_with_and_without_gemm(widths, batch, lr, fold_lr, seed):
    """SGD steps of random dense networks: optimize=3 with every update folded (MIN_SIZE 1)
    against plain statements (optimize=0), loss and parameters to 1e-10."""
    rng = np.random.default_rng(seed)
    features, classes = 3, widths[-1] + 1
    xs = [rng.uniform(-1, 1, (batch, features)) for _ in range(3)]
    ys = [labels_for(rng, batch, classes) for _ in range(3)]

    def build(passes, memory=False):
        x = gc.input("x", ("batch", features))
        labels = gc.input("labels", ("batch",), dtype="int64")
        h, fan_in, layers = x, features, [*widths, classes]
        for k, width in enumerate(layers):
            h = h @ gc.param(f"W{k}", (fan_in, width), init=np.random.default_rng(k).uniform(
                -1, 1, (fan_in, width)))
            h = gc.tanh(h) if k < len(layers) - 1 else h
            fan_in = width
        loss = gc.softmax_cross_entropy(h, labels)
        return gc.compile([loss], [x, labels], optimizer=gc.SGD(lr), passes=passes,
                          memory=memory, fold_lr=fold_lr)

    saved = gemm_pass.MIN_SIZE
    gemm_pass.MIN_SIZE = 1
    try:
        folded = build(["stabilize", "cse", "fuse", "simplify", "gemm"], memory=True)
    finally:
        gemm_pass.MIN_SIZE = saved
    plain = build([])
    assert gemm_calls(folded.source) == len(widths) + 1
    for xv, yv in zip(xs, ys):
        np.testing.assert_allclose(folded(x=xv, labels=yv)[0], plain(x=xv, labels=yv)[0],
                                   rtol=1e-10)
    for name, value in plain.params.items():
        np.testing.assert_allclose(folded.params[name], value, rtol=1e-10, atol=1e-12,
                                   err_msg=name)
