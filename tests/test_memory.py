"""Memory planning (the backend's step after the passes, on at optimize=2): buffers planned
over the schedule, elementwise expressions lowered to in-place ufunc calls. The code must
give the interpreter's numbers on random graphs, across calls and batch sizes, must never
hand the caller an array that the next call overwrites, and must reuse buffers, which the
code names after what they hold."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from helpers import CODEGEN_RTOL, assert_close, labels_for, run

import graphc as gc
from graphc.backend import memory, printer
from graphc.backend.memory import live_until, plan_memory
from graphc.backend.schedule import schedule_of as _schedule
from graphc.example import load_example
from graphc.ir.node import OPS
from graphc.ops.elementwise import arg
from graphc.ops.functions import step
from graphc.ops.inplace import OUT, lower
from graphc.passes.pipeline import LEVELS

UNARY = [gc.tanh, gc.sigmoid, gc.relu, gc.softplus, gc.abs, gc.square, gc.exp,
         lambda x: -x, lambda x: gc.leaky_relu(x, 0.1), lambda x: gc.elu(x, 0.5),
         lambda x: gc.sqrt(1 + x * x), lambda x: gc.log(1 + x * x), lambda x: 1 / (2 + x * x),
         lambda x: 2 * x - 0.5]
BINARY = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b,
          lambda a, b: a / (1 + b * b), gc.maximum, gc.minimum,
          lambda a, b: gc.where(a > b, a, 0.5 * b)]


def random_graph(seed: int) -> tuple[list[gc.Node], list[gc.Node], dict[str, tuple]]:
    """Outputs and inputs of a random graph over (batch, 5) and (5,) inputs and a (5, 5)
    weight: elementwise chains with broadcasting, matmuls, reductions, a loss; returns the
    outputs, the inputs, and the feed shapes by input name (``batch`` left open)."""
    rng = np.random.default_rng(seed)
    x = gc.input("x", ("batch", 5))
    b = gc.input("b", (5,))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W = gc.param("W", (5, 5), seed=seed)
    pool = [x, b, x @ W]
    for _ in range(int(rng.integers(4, 9))):
        kind = rng.integers(0, 5)
        a = pool[rng.integers(len(pool))]
        if kind == 0:
            pool.append(UNARY[rng.integers(len(UNARY))](a))
        elif kind in (1, 2):
            c = pool[rng.integers(len(pool))]
            try:
                pool.append(BINARY[rng.integers(len(BINARY))](a, c))
            except gc.ShapeError:  # (batch,) against (batch, 5)
                pool.append(UNARY[rng.integers(len(UNARY))](c))
        elif kind == 3 and a.ndim == 2:
            pool.append(gc.tanh(a) @ W.T + b)
        elif a.ndim:
            pool.append(gc.sum(a, axis=-1, keepdims=bool(rng.integers(2))) * 0.1)
    wide = [n for n in pool if n.shape == ("batch", 5)]
    loss = gc.softmax_cross_entropy(wide[-1], labels) + gc.mean(pool[-1] * pool[-1]) \
        + gc.mean(pool[2] * wide[-1])
    outputs = [loss, pool[-1], *gc.grad(loss, [W, x])]
    return outputs, [x, b, labels], {"x": ("batch", 5), "b": (5,)}


def feeds_for(inputs: list[gc.Node], batch: int, seed: int) -> dict[gc.Node, np.ndarray]:
    rng = np.random.default_rng(seed)
    x, b, labels = inputs
    return {x: rng.standard_normal((batch, 5)), b: rng.standard_normal(5),
            labels: labels_for(rng, batch, 5)}


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_match_the_interpreter_over_calls_and_batches(seed: int) -> None:
    outputs, inputs, _ = random_graph(seed)
    prog = gc.compile(outputs, inputs, optimize=2)
    assert "_allocate(" in prog.source or "out=" not in prog.source
    for call, batch in enumerate((4, 4, 7, 4)):
        feeds = feeds_for(inputs, batch, seed + call)
        for got, want in zip(run(prog, feeds), gc.evaluate(outputs, feeds)):
            assert_close(got, want, rtol=CODEGEN_RTOL, atol=1e-12,
                         what=f"seed {seed}, call {call}, batch {batch}")


def test_outputs_of_one_call_survive_the_next() -> None:
    x = gc.input("x", ("batch", 3))
    W = gc.param("W", (3, 4), seed=0)
    h = gc.relu(x @ W + 1.0)
    y = gc.tanh(h @ W.T) * 2.0
    loss = gc.sum(y * y)
    outputs = [y, h.T, *gc.grad(loss, [W, x])]
    prog = gc.compile(outputs, [x], optimize=2)
    rng = np.random.default_rng(0)
    first = prog(x=rng.standard_normal((6, 3)))
    kept = [a.copy() for a in first]
    prog(x=rng.standard_normal((6, 3)))
    for a, k in zip(first, kept):
        np.testing.assert_array_equal(a, k)


def mlp(dtype: str = "float64"):
    x = gc.input("x", ("batch", 8), dtype=dtype)
    labels = gc.input("labels", ("batch",), dtype="int64")
    W1 = gc.param("W1", (8, 16), seed=1, dtype=dtype)
    b1 = gc.param("b1", (16,), init="zeros", dtype=dtype)
    W2 = gc.param("W2", (16, 16), seed=2, dtype=dtype)
    b2 = gc.param("b2", (16,), init="zeros", dtype=dtype)
    W3 = gc.param("W3", (16, 4), seed=3, dtype=dtype)
    b3 = gc.param("b3", (4,), init=0.1, dtype=dtype)
    h1 = gc.relu(x @ W1 + b1)
    h2 = gc.tanh(h1 @ W2 + b2)
    loss = gc.softmax_cross_entropy(h2 @ W3 + b3, labels)
    return loss, [x, labels]


@pytest.mark.parametrize("optimizer", [lambda: gc.SGD(0.1), lambda: gc.Adam(0.01),
                                       lambda: gc.Momentum(0.1)])
def test_training_steps_match_plain_code(optimizer) -> None:
    """Three steps at optimize=2 update the parameters as the plain optimize=0 code does
    (which the codegen tests hold to the interpreter), batch size changing between steps."""
    progs = []
    for level in (0, 2):
        loss, inputs = mlp()
        progs.append((gc.compile([loss], inputs, optimizer=optimizer(), optimize=level),
                      inputs))
    rng = np.random.default_rng(0)
    for batch in (5, 5, 9):
        xv, lv = rng.standard_normal((batch, 8)), labels_for(rng, batch, 4)
        losses = [p(x=xv, labels=lv)[0] for p, _ in progs]
        assert_close(losses[1], losses[0], rtol=CODEGEN_RTOL, atol=1e-12, what="loss")
    (plain, _), (planned, _) = progs
    for name, value in plain.params.items():
        assert_close(planned.params[name], value, rtol=1e-9, atol=1e-12, what=name)


def test_float32_training_stays_float32() -> None:
    loss, inputs = mlp("float32")
    prog = gc.compile([loss], inputs, optimizer=gc.SGD(0.1), optimize=2)
    rng = np.random.default_rng(0)
    before = {k: v.copy() for k, v in prog.params.items()}
    value = prog(x=rng.standard_normal((6, 8)), labels=labels_for(rng, 6, 4))[0]
    assert np.isfinite(value)
    assert all(v.dtype == np.float32 for v in prog.params.values())
    assert any(not np.array_equal(before[k], v) for k, v in prog.params.items())
    assert "np.float32)" in prog.source


def test_planner_reuses_buffers_for_an_mlp() -> None:
    loss, inputs = mlp()
    prog = gc.compile([loss], inputs, optimizer=gc.SGD(0.1), optimize=2)
    final = prog.stages[-1].graph
    plan = plan_memory(_schedule(final), final.outputs)
    assert len(plan.placements) >= 10
    assert len(plan.buffers) < len(plan.placements)
    assert plan.peak_bytes({"batch": 32}) > 0
    assert_plan_is_safe(prog)
    assert "np.matmul(x, W1, out=" in prog.source
    assert "x.T" in prog.source and "W3.T" in prog.source


def test_optimize_1_keeps_plain_code() -> None:
    loss, inputs = mlp()
    source = gc.compile([loss], inputs, optimizer=gc.SGD(0.1), optimize=1).source
    assert "_buffer" not in source and "out=" not in source


def assert_plan_is_safe(prog) -> None:
    """No buffer is written while a value in it may still be read: a node's output buffer
    holds no value that is read later, except one of its own inputs that dies there; its
    scratch buffers hold no value that is read at or after it."""
    final = prog.stages[-1].graph
    schedule = _schedule(final)
    plan = plan_memory(schedule, final.outputs)
    last = live_until(schedule, final.outputs)
    held: dict[int, int] = {}  # buffer -> the node whose value it holds
    for i, node in enumerate(schedule):
        placement = plan.placements.get(node.id)
        if placement is None:
            continue
        inputs = {x.id for x in node.inputs}
        for k in placement.temps:
            assert k not in held or last[held[k]] < i, f"scratch {k} clobbers a live value"
        if placement.out is not None and node.op.name != "assign":
            k = placement.out
            if k in held and last[held[k]] >= i:
                assert last[held[k]] == i and held[k] in inputs, f"{node} clobbers a value"
            held[k] = node.id


@pytest.mark.parametrize("seed", range(40))
def test_random_plans_are_safe(seed: int) -> None:
    outputs, inputs, _ = random_graph(seed)
    assert_plan_is_safe(gc.compile(outputs, inputs, optimize=2))


def test_views_keep_their_base_alive() -> None:
    """A buffer read later through a transpose is not handed to a node in between."""
    x = gc.input("x", (3, 3))
    a = gc.exp(x) * 2.0
    b = gc.tanh(x) + 1.0  # same shape: would take a's buffer if a.T did not keep it alive
    c = gc.sum((a.T @ b) + a.T * b)
    prog = gc.compile([c], [x], optimize=2)
    assert_plan_is_safe(prog)
    xv = np.random.default_rng(1).standard_normal((3, 3))
    assert_close(prog(x=xv)[0], gc.evaluate([c], {x: xv})[0], rtol=CODEGEN_RTOL)


def test_lowering_writes_over_a_dying_input_only_when_safe() -> None:
    x0, x1 = arg(0), arg(1)
    shapes = {x0: (4,), x1: (4,)}
    relu_grad = lower(x0 * step(x1), shapes, (4,), root_in_place=False)
    assert relu_grad.may_overwrite(x0) and relu_grad.steps[-1].out == OUT
    twice = lower(sp.exp(x0) + sp.tanh(x0), shapes, (4,))
    assert not twice.may_overwrite(x0)
    assert lower(sp.Piecewise((x0, x0 > 0), (0, True)), shapes, (4,)) is None


def test_scalar_factors_fold_into_one_multiply() -> None:
    """0.01 * (p - y) / B: the learning rate and the batch size scale once, not twice; an
    array factor still multiplies on its own."""
    x0, x1, x2, x3, x4 = arg(0), arg(1), arg(2), arg(3), arg(4)
    shapes = {x0: (4, 3), x1: (4, 3), x2: (), x3: (4, 3), x4: ()}
    ce_grad = lower(x4 * (sp.exp(x0) - x1) / x2, shapes, (4, 3))
    assert [s.fn for s in ce_grad.steps] == ["np.exp", "np.subtract", "np.multiply"]
    assert ce_grad.steps[-1].args[1] == ("expr", x4 / x2)
    scaled = lower(3 * x0 * x3 / x2, shapes, (4, 3))
    assert [s.fn for s in scaled.steps] == ["np.multiply", "np.multiply"]
    assert lower(-x0 / x3, shapes, (4, 3)).steps[-1].fn == "np.negative"


def test_relu_gradient_compares_against_the_zeros_buffer() -> None:
    loss, inputs = mlp()
    source = gc.compile([loss], inputs, optimizer=gc.SGD(0.1), optimize=2).source
    assert "np.greater(h1, zeros_batch_16, out=" in source
    assert "0.0" not in source.split("# backward")[1]


def test_saved_module_runs_with_numpy_only(tmp_path) -> None:
    loss, inputs = mlp()
    prog = gc.compile([loss], inputs, optimizer=gc.Adam(0.01), optimize=2)
    path = tmp_path / "step.py"
    prog.save(path)
    spec = importlib.util.spec_from_file_location("saved_step", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    for batch in (4, 6):
        xv, lv = rng.standard_normal((batch, 8)), labels_for(rng, batch, 4)
        assert np.isfinite(module.main(xv, lv)[0])
    assert set(module._buffers) and "import graphc" not in path.read_text()


def test_report_counts_stages() -> None:
    """A row per stage of the pipeline, printed without buffers, then "memory": the last
    stage with its plan, the code the program runs."""
    loss, inputs = mlp()
    prog = gc.compile([loss], inputs, optimizer=gc.SGD(0.1), optimize=2)
    report = prog.report(batch=32)
    assert [s.name for s in prog.stages] == ["source", *LEVELS[2]]
    assert [r[0] for r in report.rows[1:]] == ["source", *LEVELS[2], "memory"]
    rows = {line.split()[0]: line.split() for line in report.splitlines()[1:] if line}
    last = LEVELS[2][-1]
    assert int(rows["memory"][3]) < int(rows[last][3])  # arrays allocated per step
    assert rows["memory"][1] == rows[last][1]  # the same graph, planned
    assert "KiB" in rows["memory"][-1]
    assert all(r[-1] == "-" for r in report.rows[1:-1])


@pytest.mark.parametrize("options", [dict(optimize=2, memory=False), dict(optimize=1),
                                     dict(passes=LEVELS[2])])
def test_report_of_an_unplanned_program_has_no_memory_row(options) -> None:
    prog = gc.compile(*mlp(), optimizer=gc.SGD(0.1), **options)
    report = prog.report(batch=32)
    assert not prog.planned and prog.plan is None
    assert [r[0] for r in report.rows[1:]] == [s.name for s in prog.stages]
    assert all(r[-1] == "-" for r in report.rows[1:])


def test_memory_false_at_optimize_2_is_unplanned_and_computes_the_same() -> None:
    """The same passes without buffers: no planned array in the code, and the same losses
    and parameters over three steps (batch size changing) as the planned program."""
    planned, plain = (gc.compile(*mlp(), optimizer=gc.Adam(0.01), memory=memory)
                      for memory in (None, False))
    assert planned.planned and "_buffers" in planned.source
    assert not plain.planned and "_buffers" not in plain.source and "out=" not in plain.source
    assert [s.name for s in plain.stages] == [s.name for s in planned.stages]
    rng = np.random.default_rng(0)
    for batch in (5, 5, 9):
        xv, lv = rng.standard_normal((batch, 8)), labels_for(rng, batch, 4)
        assert_close(plain(x=xv, labels=lv)[0], planned(x=xv, labels=lv)[0],
                     rtol=CODEGEN_RTOL, atol=1e-12, what="loss")
    for name, value in planned.params.items():
        assert_close(plain.params[name], value, rtol=1e-9, atol=1e-12, what=name)


@pytest.mark.parametrize("level", [2, 3])
def test_a_level_is_its_passes_with_memory_planned(level) -> None:
    """``optimize=level`` and ``passes=LEVELS[level], memory=True`` print the same module
    (but for the header, which says optimize=-1 for a list of passes)."""
    by_level, by_list = (gc.compile(*mlp(), optimizer=gc.SGD(0.1), **options) for options in
                         (dict(optimize=level), dict(passes=LEVELS[level], memory=True)))
    assert by_list.source == by_level.source.replace(f"(optimize={level})", "(optimize=-1)", 1)
    assert by_list.planned and "_buffers" in by_list.source


def test_memory_in_passes_is_deprecated_and_means_memory_true() -> None:
    names = ["stabilize", "cse", "fuse", "simplify"]
    with pytest.warns(DeprecationWarning, match="memory=True") as caught:
        old = gc.compile(*mlp(), passes=[*names, "memory"])
    assert caught[0].filename == __file__  # points at the call of gc.compile
    new = gc.compile(*mlp(), passes=names, memory=True)
    assert old.planned and old.source == new.source
    assert [s.name for s in old.stages] == ["source", *names]
    with pytest.raises(ValueError, match="memory=False"):
        gc.compile(*mlp(), passes=["memory"], memory=False)


def test_buffers_are_made_once_per_batch_size() -> None:
    loss, inputs = mlp()
    prog = gc.compile([loss], inputs, optimizer=gc.SGD(0.1))
    namespace = prog._fn.__globals__
    rng = np.random.default_rng(1)
    seen = []
    for batch in (4, 6, 4, 6):
        prog(x=rng.standard_normal((batch, 8)), labels=labels_for(rng, batch, 4))
        seen.append({k: [id(b) for b in v] for k, v in namespace["_buffers"].items()})
    assert list(seen[-1]) == [(4,), (6,)]  # one set of arrays per batch size
    assert seen[-1] == seen[1]  # the third and fourth calls made no new arrays


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_planned_softmax_log_softmax_and_one_hot(axis) -> None:
    """As intermediates they write into planned buffers (no array allocated per call for
    them) and equal the interpreter, across calls and batch sizes."""
    x = gc.input("x", ("batch", 5))
    labels = gc.input("labels", ("batch",), dtype="int64")
    y = gc.sum(gc.tanh(gc.softmax(x, axis=axis)) * gc.log_softmax(2 * x, axis=axis)
               + gc.one_hot(labels, 5) * x)
    prog = gc.compile([y], [x, labels], optimize=2)
    final = prog.stages[-1].graph
    plan = plan_memory(_schedule(final), final.outputs)
    placed = {n.op.name for n in final.nodes() if n.id in plan.placements}
    assert {"softmax", "log_softmax", "one_hot"} <= placed
    assert "np.eye" not in prog.source
    rng = np.random.default_rng(2)
    for batch in (3, 3, 6):
        xv, lv = 10 * rng.standard_normal((batch, 5)), labels_for(rng, batch, 5)
        assert_close(prog(x=xv, labels=lv)[0], gc.evaluate([y], {x: xv, labels: lv})[0],
                     rtol=CODEGEN_RTOL)


def test_neither_the_printer_nor_the_planner_names_an_op() -> None:
    """Ops declare what their code writes into (``Op.storage``) and which input they update
    in place (``Op.updates``): the printer and the memory planner compare no op's name."""
    ops = "|".join(sorted(OPS))
    for module in (printer, memory):
        source = inspect.getsource(module)
        assert "op.name" not in source, module.__name__
        assert not re.search(rf"[\"']({ops})[\"']", source), module.__name__


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example_step(name: str) -> gc.Program:
    """The training step ``graphc emit`` prints for a shipped example, at the default level."""
    example = load_example(EXAMPLES / f"{name}.py")
    return gc.compile(example.outputs, example.input_nodes, optimizer=example.optimizer)


def main_of(source: str) -> ast.FunctionDef:
    return next(n for n in ast.parse(source).body
                if isinstance(n, ast.FunctionDef) and n.name == "main")


def test_the_digits_step_names_its_buffers_after_what_they_hold() -> None:
    """out/mlp_digits_step.py reads without the optimize=1 code beside it: no buffer is
    ``bufN``; a value is written over its input in place under that input's name and bound to
    its own; scratch and constants are named by role and shape; an update computed before it
    is applied is its parameter's delta. The softmax cross-entropy gradient is written over
    log_p with no one-hot matrix; the weight gradients are computed into views of d_all, and
    Adam updates all four parameters at once: 47 NumPy calls, 13 arrays allocated."""
    prog = example_step("mlp_digits")
    main = prog.source[prog.source.index("def main("):]
    assert not re.search(r"\bbuf\d+\b", main)
    for line in ["np.matmul(x, W1, out=matmul1)",
                 "h1 = np.maximum(matmul1, zeros_batch_128, out=matmul1)",
                 "np.subtract(scores, scratch_batch_1, out=log_p)",
                 "np.exp(log_p, out=log_p)",
                 "log_p[np.arange(batch), labels] = np.expm1(log_p_labels)",
                 "d_scores = np.multiply(log_p, 1/batch, out=log_p)",
                 "np.matmul(ones_batch, g_relu1, out=d_b1)",
                 "np.matmul(x.T, g_relu1, out=d_W1)",
                 "np.multiply(m_all, 0.9, out=m_all)",  # m's own term first: one scratch
                 "np.add(m_all, scratch_9610, out=m_all)",
                 "flat_params -= delta_flat_params"]:
        assert line in main, line
    assert "g_one_hot" not in prog.source and ".fill(0)" not in prog.source
    assert "    delta_flat_params = scratch_9610\n" in prog.source  # in _allocate: one array
    assert "    d_W1 = d_all[0:8192].reshape(64, 128)\n" in prog.source
    rows = {r[0]: r for r in prog.report(batch=32).rows}
    assert rows["memory"][2:4] == ["47", "13"]


def momentum_step() -> gc.Program:
    loss, inputs = mlp()
    return gc.compile([loss], inputs, optimizer=gc.Momentum(0.1))


def random_step(seed: int) -> gc.Program:
    outputs, inputs, _ = random_graph(seed)
    return gc.compile(outputs, inputs)


#: Planned steps whose buffers hold values, scratch, constants and updates' deltas, in
#: chains where a buffer is reused once what it held is dead.
STEPS = {"mlp_digits": lambda: example_step("mlp_digits"),
         "cnn_digits": lambda: example_step("cnn_digits"),
         "mlp with momentum": momentum_step,
         **{f"random graph {seed}": partial(random_step, seed) for seed in range(0, 40, 3)}}

#: A name for an array that holds no value of the graph: its role and shape.
ROLE_NAME = re.compile(r"(scratch|mask|zeros|ones)(_\w+)?")


@pytest.mark.parametrize("step", STEPS)
def test_every_planned_statement_writes_into_a_readable_name(step: str) -> None:
    """Each array that main unpacks and every ``out=`` names a value of the graph (``h1``,
    ``d_W1``), an update's delta (``delta_W1``), or scratch or a constant by role and shape
    (``scratch_64_128``, ``ones_batch``); main unpacks a name per stretch of a buffer's life,
    all of them bound to the plan's buffers, one array each."""
    prog = STEPS[step]()
    values = set(prog.names.values())
    main = main_of(prog.source)
    unpack = next(s for s in main.body if isinstance(s, ast.Assign)
                  and "_buffers" in ast.unparse(s.value))
    unpacked = [t.id for t in unpack.targets[0].elts]
    # each out= by the array it writes (a view's: d_conv2 of d_conv2[:, :, ki::2, kj::2])
    outs = [re.findall(r"\w+", ast.unparse(k.value))[0] for n in ast.walk(main)
            if isinstance(n, ast.Call) for k in n.keywords if k.arg == "out"]
    assert outs
    for name in unpacked + outs:
        assert name in values or ROLE_NAME.fullmatch(name) or (
            name.startswith("delta_") and name[6:] in values), f"{step}: {name}"
        assert not re.fullmatch(r"buf\d+", name), f"{step}: {name}"
    assert len(unpacked) == len(set(unpacked))
    allocate = prog._fn.__globals__["_allocate"]
    arrays = allocate(*[3] * allocate.__code__.co_argcount)
    assert len(arrays) == len(unpacked)
    assert len({id(a) for a in arrays}) == len(prog.plan.buffers)


def test_a_buffer_takes_a_new_name_where_it_starts_to_hold_something_new() -> None:
    """With momentum, the step of all parameters is computed into their flat gradients'
    array once the gradients are dead: under the name delta_flat_params, bound to d_all's
    array in _allocate."""
    source = momentum_step().source
    assert "    delta_flat_params = d_all\n" in source
    assert "np.multiply(b_all, 0.1, out=delta_flat_params)" in source
    assert "flat_params -= delta_flat_params" in source


def test_buffer_names_never_take_a_users_name() -> None:
    """User names that the buffers' names would be (a role and a shape, a delta): the
    buffers take suffixed names, every name stays unique, and the step trains as the plain
    code does."""
    progs = []
    for level in (0, 2):
        ones_batch = gc.input("ones_batch", ("batch", 3))
        labels = gc.input("zeros_batch_4", ("batch",), dtype="int64")
        W = gc.param("W", (3, 4), seed=0)
        delta_flat_params = gc.param("delta_flat_params", (4,), init=0.1)
        scratch_batch_1 = gc.relu(ones_batch @ W + delta_flat_params)
        loss = gc.softmax_cross_entropy(scratch_batch_1, labels)
        progs.append(gc.compile([loss], [ones_batch, labels], optimizer=gc.Momentum(0.1),
                                optimize=level))
    source = progs[1].source
    for name in ("zeros_batch_4_2", "ones_batch_2", "delta_flat_params_2", "scratch_batch_1_2"):
        assert re.search(rf"\b{name}\b", source), name
    rng = np.random.default_rng(3)
    for batch in (4, 4, 6):
        feeds = {"ones_batch": rng.standard_normal((batch, 3)),
                 "zeros_batch_4": labels_for(rng, batch, 4)}
        losses = [p(**feeds)[0] for p in progs]
        assert_close(losses[1], losses[0], rtol=CODEGEN_RTOL, what="loss")
    for name, value in progs[0].params.items():
        assert_close(progs[1].params[name], value, rtol=1e-9, atol=1e-12, what=name)
