"""Flat storage (the flatten pass, graphc.backend.flat_storage): an optimizer's updates of all
parameters as one update of flat arrays, with the parameters, their state and their gradients
views of those arrays. Each test checks numbers: the flat step against the same pipeline
without the flatten pass (the same arithmetic, so the same bits), and against the update
formulas written out in NumPy."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import graphc as gc
from graphc.backend.program import load
from graphc.passes.pipeline import LEVELS

WITHOUT_FLATTEN = [p for p in LEVELS[2] if p != "flatten"]

OPTIMIZERS = {
    "sgd": lambda: gc.SGD(0.1),
    "momentum": lambda: gc.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "rmsprop": lambda: gc.RMSProp(0.01, centered=True, momentum=0.5),
    "adam": lambda: gc.Adam(0.01),
    "adamw": lambda: gc.AdamW(0.01, weight_decay=0.1),
}


def mlp(seed: int = 0, dtype: str = "float64"):
    """A two-layer MLP with softmax cross-entropy: its loss, inputs and parameters."""
    x = gc.input("x", ("batch", 5), dtype=dtype)
    labels = gc.input("labels", ("batch",), dtype="int64")
    W1 = gc.param("W1", (5, 7), dtype=dtype, seed=seed)
    b1 = gc.param("b1", 7, init=0.1, dtype=dtype)
    W2 = gc.param("W2", (7, 3), dtype=dtype, seed=seed + 1)
    b2 = gc.param("b2", 3, init=-0.1, dtype=dtype)
    h = gc.relu(x @ W1 + b1)
    loss = gc.softmax_cross_entropy(h @ W2 + b2, labels)
    return loss, [x, labels], [W1, b1, W2, b2]


def two_dtypes():
    """A float32 layer and a float64 layer, each with its own input, one loss."""
    x32 = gc.input("x32", ("batch", 5), dtype="float32")
    x64 = gc.input("x", ("batch", 5))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W = gc.param("W", (5, 3), dtype="float32", seed=1)
    b = gc.param("b", 3, init=0.1, dtype="float32")
    V = gc.param("V", (5, 3), seed=2)
    c = gc.param("c", 3, init=0.2)
    loss = gc.softmax_cross_entropy(x32 @ W + b, labels) + gc.mean(gc.tanh(x64 @ V + c) ** 2)
    return loss, [x32, x64, labels]


def feeds(step: int, batch: int = 6, dtype: str = "float64") -> dict:
    rng = np.random.default_rng(100 + step)
    return {"x": rng.standard_normal((batch, 5)).astype(dtype),
            "labels": rng.integers(0, 3, batch)}


def train(prog, steps: int = 4) -> list[float]:
    return [float(prog(**feeds(s))[0]) for s in range(steps)]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_flat_step_is_the_per_parameter_step_bit_for_bit(name):
    results = []
    for passes in (LEVELS[2], WITHOUT_FLATTEN):
        loss, inputs, params = mlp()
        prog = gc.compile(loss, inputs, optimizer=OPTIMIZERS[name](), passes=passes,
                          memory=True)
        results.append((train(prog), {k: v.copy() for k, v in prog.params.items()}, prog.source))
    (flat_losses, flat_params, flat_source), (plain_losses, plain_params, _) = results
    assert "flat_params -= " in flat_source and "[0:35].reshape(5, 7)" in flat_source  # views
    assert flat_losses == plain_losses
    for k in plain_params:
        np.testing.assert_array_equal(flat_params[k], plain_params[k], err_msg=k)


def test_flat_adam_matches_the_formula_written_out():
    """Adam as torch.optim writes it, per parameter, with graphc's gradients at optimize=0
    (no pass at all) as the independent reference of the update."""
    loss, inputs, params = mlp()
    prog = gc.compile(loss, inputs, optimizer=gc.Adam(0.01))
    ref_loss, ref_inputs, ref_params = mlp()
    grads = gc.compile([ref_loss, *gc.grad(ref_loss, ref_params)], ref_inputs, optimize=0)
    m = [np.zeros_like(p.array) for p in ref_params]
    v = [np.zeros_like(p.array) for p in ref_params]
    for t in range(1, 5):
        got = float(prog(**feeds(t))[0])
        want, *g = grads(**feeds(t))
        assert got == pytest.approx(float(want), rel=1e-12)
        for p, mi, vi, gi in zip(ref_params, m, v, g):
            mi[...] = 0.9 * mi + 0.1 * gi
            vi[...] = 0.999 * vi + 0.001 * gi * gi
            step = 0.01 / (1 - 0.9**t) * mi / (np.sqrt(vi) / np.sqrt(1 - 0.999**t) + 1e-8)
            p.array[...] -= step
        for p, q in zip(params, ref_params):
            np.testing.assert_allclose(p.array, q.array, rtol=1e-12, atol=1e-15, err_msg=p.name)


def test_parameters_state_and_gradients_are_views_of_flat_arrays():
    loss, inputs, params = mlp()
    prog = gc.compile(loss, inputs, optimizer=gc.Adam(0.01))
    flat = prog.signature.flats
    assert [f.name for f in flat] == ["m_all", "v_all", "flat_params"]
    whole = next(f for f in flat if f.name == "flat_params").value
    assert whole.shape == (5 * 7 + 7 + 7 * 3 + 3,)
    assert all(np.shares_memory(prog.params[p.name], whole) for p in params)
    assert "d_W1 = d_all[0:35].reshape(5, 7)" in prog.source
    assert "np.matmul(x.T, g_relu1, out=d_W1)" in prog.source
    assert "def main(x, labels, W1, b1, W2, b2, t, m_all, v_all, flat_params):" in prog.source
    rows = {r[0]: r for r in prog.report(batch=6).rows[1:]}
    assert int(rows["flatten"][2]) < int(rows["simplify"][2]) - 20  # NumPy calls per step
    # the pieces of d_all are views, not buffers: neither the header nor the bytes count them
    header = prog.source.splitlines()[1]
    assert header.startswith("# buffers:") and "(5, 7)" not in header and "(66,)" in header
    made = load(prog.source)["_allocate"](6)  # the arrays the module allocates, once
    owners = {id(a): a for a in made if a.base is None}
    assert prog.plan is not None
    assert prog.plan.peak_bytes({"batch": 6}) == sum(a.nbytes for a in owners.values())
    assert len(owners) < len({id(a) for a in made})  # the pieces are views


def test_setting_a_parameter_reaches_the_flat_step():
    loss, inputs, params = mlp()
    prog = gc.compile(loss, inputs, optimizer=gc.SGD(0.1))
    loss2, inputs2, params2 = mlp(seed=5)
    ref = gc.compile(loss2, inputs2, optimizer=gc.SGD(0.1), passes=WITHOUT_FLATTEN,
                     memory=True)
    for name in prog.params:
        prog.params[name] = ref.params[name]
    assert train(prog) == train(ref)
    np.testing.assert_array_equal(prog.params["W2"], ref.params["W2"])


def test_programs_over_the_same_parameters_stay_in_step():
    """Two training programs over the same parameters with flat arrays of different pieces
    (Adam over all four; SGD, with W2 fed, over three), and one that reads them plainly,
    called in turn: each sees the others' updates, as programs without flat storage do."""
    def programs(passes):
        loss, inputs, params = mlp()
        W2 = params[2]
        adam = gc.compile(loss, inputs, optimizer=gc.Adam(0.01), passes=passes, memory=True)
        sgd = gc.compile(loss, [*inputs, W2], optimizer=gc.SGD(0.1), passes=passes,
                         memory=True)
        plain = gc.compile(loss, inputs)
        return adam, sgd, plain, W2

    runs = []
    for passes in (LEVELS[2], WITHOUT_FLATTEN):
        adam, sgd, plain, W2 = programs(passes)
        losses = []
        for s in range(3):
            losses.append(float(adam(**feeds(s))[0]))
            losses.append(float(sgd(**feeds(s), W2=W2.array * 0.5)[0]))
            losses.append(float(plain(**feeds(s))[0]))
        runs.append((losses, {k: v.copy() for k, v in adam.params.items()}))
    assert runs[0][0] == runs[1][0]
    for k, v in runs[1][1].items():
        np.testing.assert_array_equal(runs[0][1][k], v, err_msg=k)


def test_two_dtypes_make_two_flat_arrays():
    progs = [gc.compile(*two_dtypes(), optimizer=gc.Adam(0.01), passes=passes, memory=True)
             for passes in (LEVELS[2], WITHOUT_FLATTEN)]
    flat, plain = progs
    assert sorted(f.dtype.name for f in flat.signature.flats if "params" in f.name) == \
        ["float32", "float64"]
    for s in range(3):
        f = feeds(s)
        f["x32"] = f["x"].astype("float32")
        assert float(flat(**f)[0]) == float(plain(**f)[0])
    for k in plain.params:
        assert flat.params[k].dtype == plain.params[k].dtype
        np.testing.assert_array_equal(flat.params[k], plain.params[k], err_msg=k)


def test_flatten_alone_copies_the_gradients_and_computes_the_same():
    loss, inputs, _ = mlp()
    flat = gc.compile(loss, inputs, optimizer=gc.Adam(0.01), passes=["flatten"])
    loss2, inputs2, _ = mlp()
    plain = gc.compile(loss2, inputs2, optimizer=gc.Adam(0.01), passes=[])
    assert "flat_params -= " in flat.source
    assert "flat = np.concatenate((g_mul5, g_mul8, g_mul11, g_mul14), axis=None)" in flat.source
    assert train(flat) == train(plain)


def test_saved_module_keeps_the_flat_layout(tmp_path):
    loss, inputs, _ = mlp()
    prog = gc.compile(loss, inputs, optimizer=gc.Adam(0.01))
    train(prog, 2)
    prog.save(tmp_path / "step.py")
    spec = importlib.util.spec_from_file_location("step", tmp_path / "step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for s in range(2, 4):
        assert float(module.main(**feeds(s))[0]) == float(prog(**feeds(s))[0])
    np.testing.assert_array_equal(module.W1, prog.params["W1"])
    m_W2 = next(n for n in prog.signature.owned if n.name == "m_W2")
    np.testing.assert_array_equal(module.m_W2, m_W2.array)
    assert np.shares_memory(module.m_W2, module.m_all)


def test_check_numerics_with_flat_storage_names_the_node():
    loss, inputs, params = mlp()
    prog = gc.compile(loss, inputs, optimizer=gc.Adam(0.01), check_numerics=True)
    train(prog, 2)
    before = {k: v.copy() for k, v in prog.params.items()}
    bad = feeds(2)
    bad["x"][0, 0] = np.inf
    with pytest.raises(gc.NumericsError, match="input 'x'"):
        prog(**bad)
    for k, v in before.items():
        np.testing.assert_array_equal(prog.params[k], v)


def test_a_leaf_bound_to_another_array_is_read_at_the_next_call():
    """Programs keep their leaves' arrays at hand between calls; binding a leaf's value to
    another array (as gc.check_grads does for a moment) reaches every program at its next
    call: a flat one lays its storage out again from the new value."""
    loss, inputs, params = mlp()
    step = gc.compile(loss, inputs, optimizer=gc.SGD(0.1))
    plain = gc.compile(loss, inputs)
    loss2, inputs2, params2 = mlp()
    ref = gc.compile(loss2, inputs2, optimizer=gc.SGD(0.1), passes=WITHOUT_FLATTEN, memory=True)
    train(step, 2), train(ref, 2)
    W1, W1_ref = params[0], params2[0]
    before = float(plain(**feeds(7))[0])
    W1.value = W1.array * 0.5  # a new array, not a view of flat_params
    W1_ref.value = W1_ref.array * 0.5
    after = float(plain(**feeds(7))[0])
    assert after != before and after == float(gc.compile(loss2, inputs2)(**feeds(7))[0])
    assert train(step, 3) == train(ref, 3)
    assert np.shares_memory(step.params["W1"], step.signature.flats[-1].value)
    np.testing.assert_array_equal(step.params["W1"], ref.params["W1"])


def test_weight_decay_and_an_l2_penalty_are_flat_too():
    """The gradient plus weight decay that an update reads (an elementwise node per
    parameter) is one flat node, as an L2 penalty's gradient in the loss is: the same bits
    as without the pass."""
    def step(passes, l2):
        loss, inputs, params = mlp()
        if l2:
            loss = loss + gc.l2_penalty(params[::2], 0.01)
        opt = gc.SGD(0.05, momentum=0.9, weight_decay=0.0 if l2 else 1e-3)
        return gc.compile(loss, inputs, optimizer=opt, passes=passes, memory=True)

    for l2 in (False, True):
        flat, plain = step(LEVELS[2], l2), step(WITHOUT_FLATTEN, l2)
        update = flat.source[flat.source.index("# update"):]
        assert "W1" not in update and "d_all" in update, update
        assert train(flat) == train(plain)
        for k in plain.params:
            np.testing.assert_array_equal(flat.params[k], plain.params[k], err_msg=k)
