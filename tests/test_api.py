"""The public API end to end: float32 and float64 programs, training steps, saved standalone
modules, and the contracts of gc.compile, gc.grad, programs and leaves. (Each optimizer's
formula is held to NumPy and torch.optim in test_optimizers.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import labels_for, normal, run

import graphc as gc

# --- a small MLP, built in either precision from the same initial values --------------------------


def build_mlp(dtype, seed=0, sizes=(6, 8, 5, 4)):
    rng = np.random.default_rng(seed)
    x = gc.input("x", ("batch", sizes[0]), dtype=dtype)
    labels = gc.input("labels", ("batch",), dtype="int64")
    h = x
    params = []
    for i in range(len(sizes) - 1):
        W = gc.param(f"W{i + 1}", sizes[i:i + 2], init=normal(rng, sizes[i:i + 2], 0.5),
                     dtype=dtype)
        b = gc.param(f"b{i + 1}", sizes[i + 1], init=normal(rng, sizes[i + 1], 0.1), dtype=dtype)
        params += [W, b]
        h = h @ W + b
        if i < len(sizes) - 2:
            h = gc.relu(h) if i == 0 else gc.tanh(h)
    return x, labels, params, h, gc.softmax_cross_entropy(h, labels)


def batch(seed=1, n=5, features=6, classes=4):
    rng = np.random.default_rng(seed)
    return {"x": normal(rng, (n, features)), "labels": labels_for(rng, n, classes)}


# --- float32 --------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [0, 2])
def test_float32_program_returns_float32_and_matches_float64(level):
    feeds = batch()
    results = {}
    for dtype in ("float32", "float64"):
        x, labels, params, scores, loss = build_mlp(dtype)
        grads = gc.grad(loss + gc.l2_penalty(params, 0.01), params)
        prog = gc.compile([loss, scores, gc.softmax(scores), *grads], [x, labels],
                          optimize=level)
        results[dtype] = prog(**feeds)
        interpreted = gc.evaluate([loss, scores, gc.softmax(scores), *grads],
                                  {x: feeds["x"], labels: feeds["labels"]})
        for got, ref in zip(results[dtype], interpreted):
            assert np.asarray(got).dtype == np.dtype(dtype) == ref.dtype
            np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == "float32" else 1e-10,
                                       atol=1e-6 if dtype == "float32" else 1e-12)
    for single, double in zip(results["float32"], results["float64"]):
        scale = max(1.0, float(np.abs(double).max()))
        np.testing.assert_allclose(single, double, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("optimizer", [gc.SGD(0.1), gc.Momentum(0.1), gc.RMSProp(0.01),
                                       gc.Adam(0.01), gc.AdamW(0.01),
                                       gc.SGD(0.1, momentum=0.9, dampening=0.5),
                                       gc.RMSProp(0.01, momentum=0.5, centered=True)], ids=repr)
def test_float32_training_keeps_float32(optimizer):
    x, labels, params, scores, loss = build_mlp("float32")
    prog = gc.compile([loss], [x, labels], optimizer=optimizer)
    feeds = batch()
    losses = []
    for _ in range(5):
        (value,) = prog(**feeds)
        assert np.asarray(value).dtype == np.float32
        losses.append(float(value))
    assert losses[-1] < losses[0]
    for name, value in prog.params.items():
        assert value.dtype == np.float32, name
    for node in prog.signature.owned:  # the step count is float64: exact past 2**24 steps
        assert node.value.dtype == (np.float64 if node.name == "t" else np.float32), node.name
    # a float64 feed is converted to the input's float32
    assert np.asarray(prog(x=feeds["x"].astype(np.float64), labels=feeds["labels"])[0]).dtype \
        == np.float32


def test_float32_constants_stay_float32():
    x = gc.input("x", (3,), dtype="float32")
    y = 2.5 * x + 1 - x / 3 + np.float64(0.5) * gc.exp(-x) + gc.sum(x) ** 2
    for level in (0, 2):
        (got,) = gc.compile([y], [x], optimize=level)(x=np.ones(3))
        assert got.dtype == np.float32


# --- training steps ------------------------------------------------------------------------------
def test_training_reduces_the_loss_and_gradients_read_the_old_parameters():
    """Updates run after every gradient is computed, so a step equals a gradient evaluated
    at the parameters before it."""
    x, labels, params, scores, loss = build_mlp("float64")
    grads = gc.grad(loss, params)
    feeds = batch()
    before = [p.value.copy() for p in params]
    expected = gc.evaluate(grads, {x: feeds["x"], labels: feeds["labels"]})
    prog = gc.compile([loss], [x, labels], optimizer=gc.SGD(0.1))
    prog(**feeds)
    for p, old, g in zip(params, before, expected):
        np.testing.assert_allclose(p.value, old - 0.1 * g, rtol=1e-12, atol=1e-15)
    losses = [float(prog(**feeds)[0]) for _ in range(20)]
    assert losses[-1] < losses[0]


def test_training_step_outputs_are_values_before_the_update():
    x = gc.input("x", ("batch", 2))
    W = gc.param("W", (2,), init=[1.0, 2.0])
    loss = gc.sum(x * W)
    outputs = [loss, gc.tanh(W), W * 1.0, W]
    expected = gc.evaluate(outputs, {x: np.ones((1, 2))})
    prog = gc.compile(outputs, [x], optimizer=gc.SGD(0.1))
    got = prog(x=np.ones((1, 2)))
    kept = [np.array(g, copy=True) for g in got]
    prog(x=np.ones((1, 2)))
    for g, k, e in zip(got, kept, expected):
        np.testing.assert_array_equal(k, e)
        np.testing.assert_array_equal(g, k)


# --- saving a standalone module -------------------------------------------------------------------
RUNNER = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np
    spec = importlib.util.spec_from_file_location("saved_step", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    feeds = dict(np.load("feeds.npz"))
    calls = int(sys.argv[2])
    outputs = [module.main(**feeds) for _ in range(calls)]
    np.savez("outputs.npz", **{f"{i}_{j}": np.asarray(v) for i, out in enumerate(outputs)
                               for j, v in enumerate(out)})
    names = sys.argv[3:]
    np.savez("params.npz", **{n: getattr(module, n) for n in names})
    assert "graphc" not in sys.modules and "sympy" not in sys.modules, "not standalone"
""")


def run_saved(directory, feeds, calls, names):
    np.savez(directory / "feeds.npz", **feeds)
    done = subprocess.run([sys.executable, "-c", RUNNER, "step.py", str(calls), *names],
                          cwd=directory, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr
    outputs = np.load(directory / "outputs.npz")
    n = len(outputs.files) // calls
    return [[outputs[f"{i}_{j}"] for j in range(n)] for i in range(calls)], \
        dict(np.load(directory / "params.npz"))


@pytest.mark.parametrize("optimizer", [gc.SGD(0.1), gc.Adam(0.01)], ids=["SGD", "Adam"])
def test_saved_training_step_runs_alone_and_gives_the_same_numbers(tmp_path, optimizer):
    x, labels, params, scores, loss = build_mlp("float64")
    prog = gc.compile([loss, scores], [x, labels], optimizer=optimizer)
    path = tmp_path / "step.py"
    prog.save(path)  # before the first call, so the saved parameters are the initial ones
    assert path.exists() and (tmp_path / "step.npz").exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")], "no temporary left"
    feeds = batch()
    expected = [[np.asarray(v).copy() for v in prog(**feeds)] for _ in range(2)]
    saved, saved_params = run_saved(tmp_path, feeds, 2, list(prog.params))
    for call in range(2):
        for got, want in zip(saved[call], expected[call]):
            np.testing.assert_array_equal(got, want)
    assert saved_params.keys() == prog.params.keys()
    for name, value in prog.params.items():
        np.testing.assert_array_equal(saved_params[name], value)


def test_saved_forward_program(tmp_path):
    x, labels, params, scores, loss = build_mlp("float32")
    prog = gc.compile([gc.softmax(scores), loss], [x, labels])
    prog.save(str(tmp_path / "step.py"))
    feeds = batch(n=3)
    feeds["x"] = feeds["x"].astype(np.float32)
    (saved,), _ = run_saved(tmp_path, feeds, 1, [])
    for got, want in zip(saved, prog(**feeds)):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match=".py"):
        prog.save(tmp_path / "step.txt")


def test_saved_module_converts_feeds_like_the_program(tmp_path):
    x, labels, params, scores, loss = build_mlp("float32")
    prog = gc.compile([scores], [x, labels])
    prog.save(tmp_path / "step.py")
    feeds = batch(n=3)  # float64 x
    (saved,), _ = run_saved(tmp_path, feeds, 1, [])
    np.testing.assert_array_equal(saved[0], prog(**feeds)[0])


# --- contracts of compile, grad, programs and nodes -----------------------------------------------
def test_program_returns_a_list_in_the_order_of_outputs():
    a = gc.input("a", (2,))
    prog = gc.compile(a * 2, [a])  # a single node is accepted
    out = prog(a=np.array([1.0, 2.0]))
    assert isinstance(out, list) and len(out) == 1
    np.testing.assert_array_equal(out[0], [2.0, 4.0])
    outs = [gc.sum(a), a + 1, gc.exp(a), a]
    got = gc.compile(outs, [a])(a=np.array([0.0, 1.0]))
    assert [np.shape(g) for g in got] == [(), (2,), (2,), (2,)]
    np.testing.assert_allclose(got[0], 1.0)
    np.testing.assert_allclose(got[2], np.exp([0.0, 1.0]))
    assert "def main(a):" in prog.source
    assert "main(a)" in repr(prog)
    compile(prog.source, "<generated>", "exec")  # valid Python on its own


def test_named_dimensions_take_any_size_per_call():
    x = gc.input("x", ("batch", 2))
    W = gc.param("W", (2, 3), init=np.arange(6.0).reshape(2, 3))
    y = gc.mean(x @ W, axis=0)
    (dW,) = gc.grad(gc.sum(y), [W])
    prog = gc.compile([y, dW], [x])
    for n in (1, 4, 9):
        value = np.arange(2.0 * n).reshape(n, 2)
        got_y, got_dW = prog(x=value)
        np.testing.assert_allclose(got_y, (value @ W.value).mean(axis=0))
        np.testing.assert_allclose(got_dW, np.repeat(value.mean(axis=0)[:, None], 3, axis=1))


def test_grad_contracts():
    x = gc.input("x", (3,))
    w = gc.input("w", (3,))
    y = gc.sum(x * w)
    gs = gc.grad(y, [w, x])
    assert isinstance(gs, list) and len(gs) == 2
    assert all(isinstance(g, gc.Node) for g in gs)
    assert gs[0].name == "d_w" and gs[1].name == "d_x"
    single = gc.grad(y, x)
    assert isinstance(single, list) and len(single) == 1
    feeds = {x: np.array([1.0, 2.0, 3.0]), w: np.array([4.0, 5.0, 6.0])}
    np.testing.assert_array_equal(gc.evaluate(gs, feeds)[0], feeds[x])
    # the upstream gradient of a non-scalar output
    up = gc.input("up", (3,))
    (dx,) = gc.grad(x * w, [x], upstream=up)
    got = gc.compile([dx], [x, w, up])(x=feeds[x], w=feeds[w], up=np.array([1.0, 0, -1]))
    np.testing.assert_array_equal(got[0], [4.0, 0.0, -6.0])
    # seed=, its former name, still works, with a DeprecationWarning
    with pytest.warns(DeprecationWarning, match="upstream="):
        (old,) = gc.grad(x * w, [x], seed=up)
    got = gc.compile([old], [x, w, up])(x=feeds[x], w=feeds[w], up=np.array([1.0, 0, -1]))
    np.testing.assert_array_equal(got[0], [4.0, 0.0, -6.0])


def test_nodes_are_symbolic():
    x = gc.input("x", (3,))
    with pytest.raises(TypeError, match="no truth value"):
        bool(x > 0)
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(x)
    with pytest.raises(TypeError, match="indexing"):
        x[0]
    y = np.float32(2) * x + np.ones(3)
    assert isinstance(y, gc.Node) and y.shape == (3,)
    assert "x" in repr(x) and "(3,)" in repr(x)
    assert x.named("features") is x and x.name == "features"


def test_param_initializers():
    he = gc.param("he", (400, 50), init="he", seed=1)
    assert he.value.shape == (400, 50) and he.value.dtype == np.float64
    assert abs(he.value.std() - np.sqrt(2 / 400)) < 0.01 * np.sqrt(2 / 400) * 10
    glorot = gc.param("glorot", (30, 20), init="glorot", seed=1)
    limit = np.sqrt(6 / 50)
    assert np.abs(glorot.value).max() <= limit and np.abs(glorot.value).max() > 0.9 * limit
    np.testing.assert_array_equal(gc.param("z", (2, 2), init="zeros").value, np.zeros((2, 2)))
    np.testing.assert_array_equal(gc.param("c", (2,), init=0.5, dtype="float32").value,
                                  np.float32([0.5, 0.5]))
    np.testing.assert_array_equal(gc.param("a", (2,), init=[1, 2]).value, [1.0, 2.0])
    assert gc.param("a", (2,), init=[1, 2]).value.dtype == np.float64
    same = [gc.param("s", (3,), seed=7).value for _ in range(2)]
    np.testing.assert_array_equal(*same)
    gc.seed(3)
    first = gc.param("p", (4,)).value
    gc.seed(3)
    np.testing.assert_array_equal(gc.param("p", (4,)).value, first)


def test_params_are_live_arrays():
    W = gc.param("W", (2,), init=[1.0, 2.0])
    x = gc.input("x", (2,))
    prog = gc.compile([gc.sum(x * W)], [x])
    assert prog(x=np.ones(2))[0] == 3.0
    prog.params["W"][:] = [10.0, 20.0]
    assert prog(x=np.ones(2))[0] == 30.0


def test_scalar_inputs_and_outputs():
    a, b = gc.scalar("a"), gc.scalar("b")
    f = gc.maximum(a, b) * gc.minimum(a, b) + a**b
    grads = gc.grad(f, [a, b])
    got = gc.compile([f, *grads], [a, b])(a=2.0, b=3.0)
    np.testing.assert_allclose(got, [6 + 8, 3 + 3 * 4, 2 + 8 * np.log(2)])


def test_integer_operands_promote_to_float64_everywhere():
    """Integer and boolean operands compute in the node's declared float64, in the generated
    code as in the interpreter (NumPy alone would compute labels + labels in integers)."""
    labels = gc.input("labels", (3,), dtype="int64")
    counts = gc.input("counts", (3, 2), dtype="int32")
    outputs = [labels + labels, labels * 2, labels / 2, gc.sum(labels), gc.mean(labels),
               gc.max(labels), gc.exp(labels), gc.one_hot(labels, 4), labels > 1,
               gc.where(labels > 1, labels, 0), counts.T @ counts,
               gc.concatenate([labels, labels]), gc.argmax(counts, axis=1),
               gc.sum(counts, axis=0, keepdims=True), gc.constant(np.arange(3)) + 1,
               gc.softmax(counts), gc.take(counts, gc.argmax(counts, axis=1))]
    feeds = {labels: np.array([0, 1, 2]), counts: np.arange(6).reshape(3, 2)}
    expected = gc.evaluate(outputs, feeds)
    for node, value in zip(outputs, expected):
        assert value.dtype == node.dtype, node
    for level in (0, 1, 2):
        got = run(gc.compile(outputs, [labels, counts], optimize=level), feeds)
        for node, g, e in zip(outputs, got, expected):
            assert np.asarray(g).dtype == node.dtype, (level, node)
            np.testing.assert_array_equal(g, e)


def test_to_networkx_gives_the_graph_for_networkx_algorithms():
    import networkx as nx

    x, y, z = gc.input("x"), gc.input("y"), gc.input("z")
    q = x + y
    f = q * z * x * x
    graph = gc.to_networkx(f)
    assert nx.is_directed_acyclic_graph(graph)
    assert graph.number_of_nodes() == 7  # x, y, z, +, and three products
    assert graph.nodes[q.id]["op"] == "elementwise" and graph.nodes[q.id]["label"] == "+"
    assert graph.nodes[x.id]["name"] == "x" and graph.nodes[x.id]["node"] is x
    (square,) = [n for n in f.inputs if n is not z and n.inputs]  # (q*z*x)*x reads x ...
    assert nx.has_path(graph, y.id, f.id) and not nx.has_path(graph, f.id, y.id)
    order = list(nx.topological_sort(graph))
    assert order.index(q.id) < order.index(f.id)
    assert sorted(d["index"] for _, _, d in graph.in_edges(f.id, data=True)) == [0, 1]
    assert square.id in graph
