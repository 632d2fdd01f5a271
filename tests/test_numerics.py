"""``gc.compile(..., check_numerics=True)``: the first node of the graph as declared whose
value holds NaN or Inf raises gc.NumericsError naming the node, its op and the user's line
that declared it, at every optimize level, fused or not, with nothing updated and no NumPy
warning beside it; a fed NaN is the input's. With the option off the generated code holds no
check at all and a call runs nothing else (it costs nothing)."""

from __future__ import annotations

import inspect
import linecache
import warnings

import numpy as np
import pytest
import sympy as sp

import graphc as gc
from graphc.backend import numerics
from graphc.ops.elementwise import arg
from graphc.passes import pipeline
from graphc.passes.rewriting import clone, rewrite

LEVELS = [0, 1, 2, 3]


def numerics_error(prog, **feeds) -> str:
    """The NumericsError's message; no warning may be emitted beside it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(gc.NumericsError) as err:
            prog(**feeds)
    assert [str(w.message) for w in caught] == []
    assert isinstance(err.value, gc.GraphcError) and isinstance(err.value, FloatingPointError)
    return str(err.value)


def headline(message: str) -> str:
    return message.splitlines()[0]


def here() -> str:
    """``test_numerics.py:N: text`` of the line after the caller's, as an error ends."""
    frame = inspect.currentframe().f_back
    lineno = frame.f_lineno + 1
    text = linecache.getline(frame.f_code.co_filename, lineno).strip()
    return f"test_numerics.py:{lineno}: {text}"


@pytest.mark.parametrize("level", LEVELS)
def test_nan_names_the_node_its_op_and_the_users_line(level):
    x = gc.input("x", ("batch", 3))
    W = gc.param("W", (3, 2), init=1.0)
    h = x @ W
    where = here()
    z = gc.log(h)  # NaN where h < 0
    out = gc.sum(z)
    prog = gc.compile([out], [x], check_numerics=True, optimize=level)
    message = numerics_error(prog, x=-np.ones((2, 3)))
    assert headline(message).startswith("NaN produced by forward node z (op log), declared at ")
    assert headline(message).endswith(where)
    assert "Nothing was updated" not in message  # nothing is: this program updates nothing


@pytest.mark.parametrize("level", LEVELS)
def test_the_first_bad_node_is_named_not_a_later_one(level):
    """exp overflows to Inf first; the NaN of Inf - Inf after it is not what is reported."""
    x = gc.input("x", (2, 3))
    e = gc.exp(x * 1000.0)
    spread = gc.sum(e, axis=1) - gc.max(e, axis=1)
    prog = gc.compile([gc.sum(spread)], [x], check_numerics=True, optimize=level)
    message = numerics_error(prog, x=np.ones((2, 3)))
    assert headline(message).startswith("Inf produced by forward node e (op exp), declared at ")
    assert headline(message).endswith("e = gc.exp(x * 1000.0)")


def log_times_two():
    x = gc.input("x", (3,))
    where = here()
    y = gc.log(x) * 2
    return [gc.sum(y)], [x], {"x": -np.ones(3)}, "NaN produced by forward node log1 (op log)", where


def tanh_of_sqrt():
    x = gc.input("x", (3,))
    where = here()
    y = gc.tanh(gc.sqrt(x))
    feeds = {"x": -np.ones(3)}
    return [gc.sum(y)], [x], feeds, "NaN produced by forward node sqrt1 (op sqrt)", where


def exp_minus_itself():
    x = gc.input("x", (3,))
    where = here()
    e = gc.exp(x)
    d = e - e
    feeds = {"x": np.full(3, 1000.0)}
    return [gc.sum(d)], [x], feeds, "Inf produced by forward node e (op exp)", where


def quotient_times_zero():
    x, z = gc.input("x", (3,)), gc.input("z", (3,))
    where = here()
    q = (x / z) * 0
    feeds = {"x": np.ones(3), "z": np.zeros(3)}
    return [gc.sum(q)], [x, z], feeds, "Inf produced by forward node div1 (op /)", where


def gradient_of_sqrt():
    x = gc.input("x", (3,))
    r = gc.sqrt(x)
    out = gc.sum(r)
    where = here()
    grads = gc.grad(out, [x])
    feeds = {"x": np.array([1.0, 0.0, 4.0])}
    return [out, *grads], [x], feeds, "Inf produced by backward node d_x (op sqrt')", where


EXAMPLES = [log_times_two, tanh_of_sqrt, exp_minus_itself, quotient_times_zero,
            gradient_of_sqrt]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda f: f.__name__)
def test_every_level_names_the_same_declared_node(example, level):
    """Fusion (log into the multiply, sqrt into the tanh) and simplification do not change
    which node is named: the one of the graph as declared."""
    outputs, inputs, feeds, node, where = example()
    prog = gc.compile(outputs, inputs, check_numerics=True, optimize=level)
    first = headline(numerics_error(prog, **feeds))
    assert first.startswith(f"{node}, declared at ") and first.endswith(where)


@pytest.mark.parametrize("level", [2, 3])
def test_a_fused_node_names_the_generated_statement_it_is_in(level):
    x = gc.input("x", (3,))
    y = gc.log(x) * 2
    prog = gc.compile([gc.sum(y)], [x], check_numerics=True, optimize=level)
    message = numerics_error(prog, x=-np.ones(3))
    assert headline(message).startswith("NaN produced by forward node log1 (op log)")
    detail = message.splitlines()[1]
    assert "it is fused into the statement that computes y (op *), at line " in detail
    lineno = int(detail.split("at line ")[1].split()[0])
    quoted = [line.strip() for line in message.splitlines()[2:]]
    source = prog.source.splitlines()
    assert quoted == [line.strip() for line in source[lineno - 1:lineno - 1 + len(quoted)]]
    # the quote ends at the line that writes y: y = 2*np.log(x), or np.multiply(y, 2, out=y)
    assert any("log" in line for line in quoted)
    assert quoted[-1].startswith("y = ") or "out=y)" in quoted[-1]


def test_unfused_nodes_name_no_generated_statement():
    x = gc.input("x", (3,))
    prog = gc.compile([gc.sum(gc.log(x))], [x], check_numerics=True, optimize=0)
    assert len(numerics_error(prog, x=-np.ones(3)).splitlines()) == 1


@pytest.mark.parametrize("level", LEVELS)
def test_a_nan_the_optimized_code_masks_is_still_reported(level):
    """Fused into one np.where, the NaN of log at x < 0 never reaches a checked value of the
    optimized code; the declared log node made it all the same."""
    x = gc.input("x", (3,))
    safe = gc.where(x > 0, gc.log(x), 0.0)
    prog = gc.compile([gc.sum(safe)], [x], check_numerics=True, optimize=level)
    message = numerics_error(prog, x=np.array([1.0, -1.0, 2.0]))
    assert headline(message).startswith("NaN produced by forward node log1 (op log)")
    assert ("holds no NaN or Inf for these inputs" in message) == (level >= 2)


@pytest.mark.parametrize("level", LEVELS)
def test_a_fed_nan_or_inf_is_the_inputs(level):
    x = gc.input("x", (2, 4))
    y = gc.input("y", (3,))
    prog = gc.compile([gc.sum(gc.log(x)) + gc.sum(y)], [x, y], check_numerics=True,
                      optimize=level)
    bad = np.ones((2, 4))
    bad[0, 3] = np.nan
    message = numerics_error(prog, x=bad, y=np.ones(3))
    assert headline(message) == "input 'x' was fed NaN at [0, 3]"
    assert "x = gc.input(\"x\", (2, 4))" in message
    message = numerics_error(prog, x=np.ones((2, 4)), y=np.array([1.0, 2.0, -np.inf]))
    assert headline(message) == "input 'y' was fed Inf at [2]"


def test_a_nan_held_by_a_parameter_is_the_parameters():
    x = gc.input("x", (2,))
    W = gc.param("W", (2, 2), init=1.0)
    prog = gc.compile([gc.sum(x * W)], [x], check_numerics=True)
    W.value[1, 0] = np.nan
    assert headline(numerics_error(prog, x=np.ones(2))) == (
        "parameter 'W' holds NaN at [1, 0] before this call")


def adam_step(level: int):
    """An Adam step whose backward pass divides by sqrt(0): W's entry [0, 1] is 0."""
    x = gc.input("x", ("batch", 2))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W = gc.param("W", (2, 3), init=np.array([[1.0, 0.0, 4.0], [1.0, 1.0, 1.0]]))
    where = here()
    root = gc.sqrt(W)
    loss = gc.softmax_cross_entropy(x @ root, labels)
    step = gc.compile([loss], [x, labels], optimizer=gc.Adam(), check_numerics=True,
                      optimize=level)
    return step, W, where


@pytest.mark.parametrize("level", LEVELS)
def test_a_training_step_names_the_backward_node_and_updates_nothing(level):
    step, W, where = adam_step(level)
    feeds = {"x": np.ones((4, 2)), "labels": np.zeros(4, dtype=np.int64)}
    held = {n.name: n.value.copy() for n in step.signature.owned}
    assert {"W", "m_W", "v_W"} <= held.keys()
    message = numerics_error(step, **feeds)
    lines = message.splitlines()
    assert lines[0].startswith("Inf produced by backward node d_W (op sqrt'), declared at ")
    assert lines[1].startswith("  It is the gradient of sqrt (d_W), flowing back through sqrt "
                               "node root, declared at ")
    assert lines[1].endswith(f"{where}.")
    assert lines[-1] == numerics.NOT_APPLIED
    for n in step.signature.owned:
        assert np.array_equal(n.value, held[n.name]), n.name
    W.value[0, 1] = 1.0  # repaired, the same step runs and updates everything
    step(**feeds)
    assert not np.array_equal(W.value, held["W"])
    assert all(not np.array_equal(n.value, held[n.name]) for n in step.signature.owned
               if n.name in ("m_W", "v_W"))


@pytest.mark.parametrize("level", [0, 1])
def test_an_update_that_overflows_is_undone_with_the_updates_before_it(level):
    """b's update runs first and is finite; W's overflows to -Inf. At optimize=0 the step
    itself has updated b by then: it is restored."""
    x = gc.input("x", (3,))
    b = gc.param("b", (3,), init=1.0)
    W = gc.param("W", (3,), init=1.0)
    loss = gc.sum(b * 1e-300) + gc.sum(W * x)
    step = gc.compile([loss], [x], optimizer=gc.SGD(1e300), check_numerics=True,
                      optimize=level)
    assert step.source.index("b -=") < step.source.index("W -=")
    message = numerics_error(step, x=np.full(3, 1e10))
    assert headline(message).startswith("Inf produced by update node W (op -=)")
    assert "It is the optimizer's update of W." in message
    assert np.array_equal(b.value, np.ones(3)) and np.array_equal(W.value, np.ones(3))


def poison_last_update(graph):
    """A broken pass: it rewrites the last update of the step to store NaN."""
    last = graph.effects[-1].id

    def local(node, original):
        if original.id != last:
            return None
        return clone(node, node.inputs, attrs={**node.attrs, "expr": sp.log(-1 - arg(0) ** 2)})

    return rewrite(graph, local)


def test_a_pass_that_changes_a_value_is_reported_as_a_compiler_bug(monkeypatch):
    monkeypatch.setitem(pipeline.PASSES, "cse", poison_last_update)
    x = gc.input("x", (3,))
    b = gc.param("b", (3,), init=1.0)
    W = gc.param("W", (3,), init=1.0)
    step = gc.compile([gc.sum(b * x) + gc.sum(W * x)], [x], optimizer=gc.SGD(0.1),
                      check_numerics=True, optimize=1)
    message = numerics_error(step, x=np.ones(3))
    lines = message.splitlines()
    assert lines[0].startswith("NaN produced by update node W (op -=)")
    assert "the graph as declared computes finite values for these inputs" in lines[0]
    assert "This is a bug in graphc's compiler" in lines[0]
    assert any("W -= np.log(" in line for line in lines)
    assert lines[-1] == numerics.NOT_APPLIED
    assert np.array_equal(b.value, np.ones(3)) and np.array_equal(W.value, np.ones(3))


@pytest.mark.parametrize("level", LEVELS)
def test_what_stabilize_makes_finite_is_not_reported(level):
    """softplus written out overflows in exp at u = 1000 as declared; stabilize, the first
    pass from optimize=1, rewrites it on purpose, and the program runs."""
    u = gc.input("u", (2,))
    out = gc.sum(gc.log(1 + gc.exp(u)))
    prog = gc.compile([out], [u], check_numerics=True, optimize=level)
    feed = np.array([1000.0, 0.0])
    if level == 0:
        assert headline(numerics_error(prog, u=feed)).startswith("Inf produced by forward node")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert np.isclose(prog(u=feed)[0], 1000.0 + np.log(2.0))


@pytest.mark.parametrize("level", LEVELS)
def test_off_there_is_no_check_and_values_pass_through(level, monkeypatch):
    def never(self, args):
        raise AssertionError("a program compiled without check_numerics ran the checks")

    monkeypatch.setattr(numerics.NumericsCheck, "__call__", never)
    x = gc.input("x", (3,))
    out = gc.sum(gc.log(x))
    prog = gc.compile([out], [x], optimize=level)
    assert "_check_finite" not in prog.source and "_NODES" not in prog.source
    with np.errstate(all="ignore"):
        assert np.isnan(prog(x=np.array([1.0, -1.0, 2.0]))[0])


@pytest.mark.parametrize("level", LEVELS)
def test_the_checks_only_add_lines_to_the_code(level):
    """The code compiled with check_numerics is the code without it, plus the checks: off,
    the generated code is exactly what it would be if the option did not exist."""
    x = gc.input("x", ("batch", 3))
    W = gc.param("W", (3, 2), seed=0)
    out = gc.mean(gc.tanh(x @ W) ** 2)
    grads = gc.grad(out, [x, W])
    checked = gc.compile([out, *grads], [x], check_numerics=True, optimize=level).source
    plain = gc.compile([out, *grads], [x], optimize=level).source
    table = checked.index("\n\n_NODES = [")
    end = checked.index("\n\ndef main(")
    kept = checked[:table] + checked[end:]
    assert [line for line in kept.splitlines() if "_check_finite(" not in line] == (
        plain.splitlines())


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


def dropout_step(check: bool, level: int):
    x = gc.input("x", ("batch", 4))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W1 = gc.param("W1", (4, 8), init="he", seed=0)
    W2 = gc.param("W2", (8, 3), init="glorot", seed=1)
    h = gc.dropout(gc.relu(x @ W1), 0.5, seed=3)
    loss = gc.softmax_cross_entropy(h @ W2, labels)
    return gc.compile([loss], [x, labels], optimizer=gc.Adam(0.01), check_numerics=check,
                      optimize=level)


@pytest.mark.parametrize("level", LEVELS)
def test_checked_training_steps_train_exactly_as_unchecked_ones(level):
    """The reference graph runs on copies: parameters, Adam's moments and dropout's draw
    counter come out of three checked steps bit for bit as out of three plain ones."""
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((6, 4)), "labels": rng.integers(0, 3, 6)}
    checked, plain = dropout_step(True, level), dropout_step(False, level)
    for _ in range(3):
        for a, b in zip(checked(**feeds), plain(**feeds)):
            assert np.array_equal(a, b)
    for a, b in zip(checked.signature.owned, plain.signature.owned):
        assert a.name == b.name and np.array_equal(a.value, b.value), a.name
