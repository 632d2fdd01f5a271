"""Feeds, one convention everywhere: ``gc.evaluate``, ``gc.render``, ``gc.render_steps``,
``gc.Example`` and compiled programs take keys that are nodes or their names, refuse a key
that names nothing in the graph, and take a fed parameter for that call only. Parameters
listed in a program's inputs are fed at each call and never trained; ``prog.params[name] =``
copies into the live array. A loss to train is a scalar; labels are range-checked through
reshapes and before any dtype conversion."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import graphc as gc
from graphc.ir.graph import leaves
from graphc.ops.leaves import state

GENERATED = "<graphc-generated"


def assert_raised_outside_generated_code(excinfo: pytest.ExceptionInfo) -> None:
    """The error came from graphc's checks, before any generated line ran."""
    frames = [str(entry.path) for entry in excinfo.traceback]
    assert not [f for f in frames if f.startswith(GENERATED)], frames


def small_net():
    """x @ W + b scored by softmax cross-entropy: the leaves and the loss."""
    x = gc.input("x", ("batch", 3))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W = gc.param("W", (3, 4), init=np.arange(12.0).reshape(3, 4) / 10)
    b = gc.param("b", (4,), init=np.array([0.1, -0.2, 0.3, 0.0]))
    scores = x @ W + b
    return x, labels, W, b, scores, gc.softmax_cross_entropy(scores, labels)


X = np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -0.5]])
LABELS = np.array([3, 0])


def numpy_loss(x, labels, W, b):
    s = x @ W + b
    z = s - s.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(labels)), labels].mean()


# --- keys: nodes or names ------------------------------------------------------------------------
def test_evaluate_takes_nodes_or_names_alike():
    x, labels, W, b, scores, loss = small_net()
    by_node = gc.evaluate([loss], {x: X, labels: LABELS})[0]
    by_name = gc.evaluate([loss], {"x": X, "labels": LABELS})[0]
    mixed = gc.evaluate(loss, {x: X, "labels": LABELS})[0]
    expected = numpy_loss(X, LABELS, W.value, b.value)
    assert by_node == by_name == mixed
    np.testing.assert_allclose(by_node, expected, rtol=1e-14)


#: Every public function that takes feeds, as f(outputs, feeds, folder for figures).
CALLERS = {
    "evaluate": lambda outputs, feeds, folder: gc.evaluate(outputs, feeds),
    "render": lambda outputs, feeds, folder: gc.render(outputs, feeds),
    "render_steps": lambda outputs, feeds, folder: gc.render_steps(outputs, feeds,
                                                                   path=folder / "f.svg"),
    "Example": lambda outputs, feeds, folder: gc.Example(outputs=outputs, feeds=feeds),
    "program": lambda outputs, feeds, folder: gc.compile(
        outputs, leaves(outputs, "input")).check_feeds(feeds),
}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("bad, words", [
    ("nope", ["unknown feed", "'nope'", "'x'", "'labels'"]),
    (3, ["3", "int", "neither a node nor a name"]),
    ("other", ["unknown feed", "'other'"]),               # a node of another graph, by name
    (None, ["None"]),
])
def test_a_key_that_names_nothing_in_the_graph_is_a_feed_error(caller, bad, words, tmp_path):
    x, labels, W, b, scores, loss = small_net()
    gc.input("other", (3,))  # declared, but the loss does not read it
    with pytest.raises(gc.FeedError) as err:
        CALLERS[caller]([loss], {x: X, labels: LABELS, bad: np.ones(3)}, tmp_path)
    for word in words:
        assert word in str(err.value), str(err.value)
    assert str(err.value).startswith(f"{caller}: ")


@pytest.mark.parametrize("caller", ["evaluate", "render", "render_steps", "Example"])
def test_nodes_that_cannot_be_fed_are_named(caller, tmp_path):
    x, labels, W, b, scores, loss = small_net()
    elsewhere = gc.input("x", ("batch", 3))  # same name, another node
    for key, words in [(elsewhere, ["'x'", "do not depend on it"]),
                       (scores, ["only inputs, parameters and optimizer state"])]:
        with pytest.raises(gc.FeedError) as err:
            CALLERS[caller]([loss], {x: X, labels: LABELS, key: np.ones((2, 4))}, tmp_path)
        for word in words:
            assert word in str(err.value)
    with pytest.raises(gc.FeedError, match="'x' is fed twice"):
        CALLERS[caller]([loss], {x: X, "x": X, labels: LABELS}, tmp_path)


def test_a_name_two_leaves_share_must_be_fed_by_node():
    a, b = gc.input("v", (2,)), gc.input("v", (2,))
    y = gc.sum(a - b)
    with pytest.raises(gc.FeedError, match="2 leaves of the graph are named 'v'; feed them by"):
        gc.evaluate([y], {"v": np.ones(2)})
    assert gc.evaluate([y], {a: np.full(2, 3.0), b: np.ones(2)})[0] == 4.0


def test_evaluate_checks_values_as_programs_do():
    x, labels, W, b, scores, loss = small_net()
    with pytest.raises(gc.FeedError, match=r"input 'x': expected shape \(batch, 3\), got \(2,"):
        gc.evaluate([loss], {x: np.ones((2, 5)), labels: LABELS})
    with pytest.raises(gc.FeedError, match="'batch' is 3 here but 2"):
        gc.evaluate([loss], {x: X, labels: np.array([0, 1, 2])})
    with pytest.raises(gc.FeedError, match="input 'labels': label -1"):
        gc.evaluate([loss], {x: X, labels: np.array([0, -1])})


# --- givens: a fed parameter stands in for its value, for one call ------------------------------
def test_a_fed_parameter_replaces_its_value_in_evaluate_only_for_that_call():
    x, labels, W, b, scores, loss = small_net()
    stored = W.value.copy()
    other = np.full((3, 4), -0.3)
    (got,) = gc.evaluate([loss], {x: X, labels: LABELS, W: other})
    np.testing.assert_allclose(got, numpy_loss(X, LABELS, other, b.value), rtol=1e-14)
    assert got != gc.evaluate([loss], {x: X, labels: LABELS})[0]
    np.testing.assert_array_equal(W.value, stored)
    (by_name,) = gc.evaluate([loss], {"x": X, "labels": LABELS, "W": other})
    assert by_name == got
    with pytest.raises(gc.FeedError, match=r"parameter 'W': expected shape \(3, 4\), got \(4,"):
        gc.evaluate([loss], {x: X, labels: LABELS, W: np.ones((4, 3))})


def test_optimizer_state_can_be_fed_too():
    W = gc.param("W", (2,), init=[1.0, 2.0])
    m = state("W_m", W, fill=0.5)
    y = gc.sum(W * m)
    assert gc.evaluate([y], {})[0] == 1.5
    assert gc.evaluate([y], {m: np.array([2.0, 0.0])})[0] == 2.0
    np.testing.assert_array_equal(m.value, [0.5, 0.5])


def test_render_draws_a_fed_parameter_at_the_value_fed():
    x = gc.scalar("x")
    w = gc.param("w", (), init=2.0)
    y = (x * w).named("y")
    assert "21" in gc.render([y], {"x": 3.0, "w": 7.0}).source  # y = 3 * 7
    assert "21" not in gc.render([y], {"x": 3.0}).source        # y = 3 * 2, w as stored
    assert w.value == 2.0


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_render_steps_takes_path_like_render_and_keeps_path_prefix(tmp_path):
    x = gc.scalar("x")
    y = gc.tanh(x * 2.0)
    with_path = gc.render_steps([y], {"x": 0.5}, path=tmp_path / "a" / "f.svg")
    assert [p.rsplit("/", 1)[-1] for p in with_path] == ["f-01.svg", "f-02.svg"]
    without_ext = gc.render_steps([y], {x: 0.5}, tmp_path / "g")
    prefixed = gc.render_steps([y], {x: 0.5}, path_prefix=tmp_path / "h")
    assert [p.rsplit("/", 1)[-1] for p in without_ext + prefixed] == \
        ["g-01.svg", "g-02.svg", "h-01.svg", "h-02.svg"]
    with open(with_path[0], encoding="utf-8") as a, open(prefixed[0], encoding="utf-8") as h:
        assert a.read() == h.read()
    with pytest.raises(TypeError, match="not both"):
        gc.render_steps([y], {x: 0.5}, path=tmp_path / "f", path_prefix=tmp_path / "f")


def test_example_feeds_by_name_resolve_to_nodes():
    x, labels, W, b, scores, loss = small_net()
    example = gc.Example(outputs=[loss], feeds={"x": X, labels: LABELS, "W": W.value * 2})
    assert list(example.feeds) == [x, labels, W]
    assert example.input_nodes == [x, labels]
    with pytest.raises(gc.FeedError, match="Example: unknown feed 'labelz'"):
        gc.Example(outputs=[loss], feeds={"x": X, "labelz": LABELS})


# --- parameters as program inputs ---------------------------------------------------------------
@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_a_parameter_listed_in_inputs_is_fed_at_each_call(level):
    x, labels, W, b, scores, loss = small_net()
    dW, db = gc.grad(loss, [W, b])
    prog = gc.compile([loss, dW, db], [x, labels, W], optimize=level)
    assert set(prog.params) == {"b"}
    stored = W.value.copy()
    for weights in (np.zeros((3, 4)), np.linspace(-1, 1, 12).reshape(3, 4)):
        got = prog(x=X, labels=LABELS, W=weights)
        expected = gc.evaluate([loss, dW, db], {x: X, labels: LABELS, W: weights})
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(W.value, stored)
    with pytest.raises(gc.FeedError, match=r"missing input\(s\) \['W'\]"):
        prog(x=X, labels=LABELS)


@pytest.mark.parametrize("level", [0, 2, 3])
def test_with_an_optimizer_a_fed_parameter_is_a_constant_of_the_step(level):
    x, labels, W, b, scores, loss = small_net()
    prog = gc.compile([loss], [x, labels, W], optimizer=gc.SGD(0.5), optimize=level)
    assert "def main(x, labels, W, b" in prog.source
    weights = np.full((3, 4), 0.2)
    b_before = b.value.copy()
    (d_b,) = gc.evaluate(gc.grad(loss, [b]), {x: X, labels: LABELS, W: weights})
    prog(x=X, labels=LABELS, W=weights)
    np.testing.assert_allclose(b.value, b_before - 0.5 * d_b, rtol=1e-12)
    np.testing.assert_array_equal(weights, np.full((3, 4), 0.2))  # the fed array is not updated
    with pytest.raises(gc.GraphcError, match="no parameter that the program holds"):
        gc.compile([loss], [x, labels, W, b], optimizer=gc.SGD(0.5))


def test_feeding_a_parameter_the_program_holds_says_how_to_feed_it():
    x, labels, W, b, scores, loss = small_net()
    prog = gc.compile([loss], [x, labels])
    with pytest.raises(gc.FeedError) as err:
        prog(x=X, labels=LABELS, W=np.zeros((3, 4)))
    message = str(err.value)
    assert "parameter 'W' is held by the program" in message
    assert "gc.compile's inputs" in message and "prog.params['W']" in message
    with pytest.raises(gc.FeedError, match="unknown feed 'y'"):
        prog(x=X, labels=LABELS, y=1)


# --- prog.params --------------------------------------------------------------------------------
def test_assigning_a_parameter_copies_into_the_live_array():
    x, labels, W, b, scores, loss = small_net()
    prog = gc.compile([loss], [x, labels], optimizer=gc.SGD(0.1))
    live = prog.params["W"]
    assert live is W.value and len(prog.params) == 2 and "W" in prog.params
    prog.params["W"] = np.zeros((3, 4), dtype=np.float32).tolist()
    assert prog.params["W"] is live and not live.any()
    expected = numpy_loss(X, LABELS, np.zeros((3, 4)), b.value)
    (value,) = prog(x=X, labels=LABELS)
    np.testing.assert_allclose(value, expected, rtol=1e-14)


@pytest.mark.parametrize("name, value, error, words", [
    ("W", np.ones((4, 3)), gc.FeedError, ["parameter 'W'", "(3, 4)", "(4, 3)"]),
    ("W", np.ones(12), gc.FeedError, ["parameter 'W'", "(3, 4)", "(12,)"]),
    ("W", "zeros", gc.FeedError, ["parameter 'W'", "numbers"]),
    ("V", np.ones((3, 4)), gc.FeedError, ["no parameter 'V'", "'W'", "'b'"]),
    ("x", np.ones((3, 4)), gc.FeedError, ["'x' is an input"]),
])
def test_assigning_a_wrong_parameter_is_an_error_naming_it(name, value, error, words):
    x, labels, W, b, scores, loss = small_net()
    prog = gc.compile([loss], [x, labels])
    before = W.value.copy()
    with pytest.raises(error) as err:
        prog.params[name] = value
    for word in words:
        assert word in str(err.value)
    np.testing.assert_array_equal(W.value, before)
    with pytest.raises(KeyError):
        prog.params["V"]


# --- a loss to train is a scalar (case 10) ------------------------------------------------------
def test_training_a_non_scalar_output_says_to_reduce_it():
    x = gc.input("x", ("batch", 3))
    W = gc.param("W", (3, 4))
    with pytest.raises(gc.ShapeError) as err:
        gc.compile([gc.tanh(x @ W)], [x], optimizer=gc.SGD(0.1))
    message = str(err.value)
    assert "outputs[0] is the loss" in message and "(batch, 4)" in message
    assert "gc.mean" in message and "gc.sum" in message
    gc.compile([gc.mean(gc.tanh(x @ W))], [x], optimizer=gc.SGD(0.1))  # reduced, it trains


# --- labels are checked where they index (case 13) ----------------------------------------------
def _through_reshapes(labels):
    return gc.reshape(gc.reshape(labels, ("batch", 1)), ("batch",))


@pytest.mark.parametrize("build", [
    lambda s, l: gc.take(s, _through_reshapes(l)),
    lambda s, l: gc.softmax_cross_entropy(s, _through_reshapes(l)),
    lambda s, l: gc.sum(gc.one_hot(_through_reshapes(l), 4) * s),
    lambda s, l: gc.take(s, gc.transpose(_through_reshapes(l))),
], ids=["take", "softmax_cross_entropy", "one_hot", "transpose"])
@pytest.mark.parametrize("bad", [-1, 4])
def test_labels_through_reshapes_are_range_checked(build, bad):
    scores = gc.input("scores", ("batch", 4))
    labels = gc.input("labels", ("batch",), dtype="int64")
    out = build(scores, labels)
    prog = gc.compile([out], [scores, labels])
    feeds = {"scores": np.ones((3, 4)), "labels": np.array([0, bad, 1])}
    for run in (lambda: prog(**feeds), lambda: gc.evaluate([out], feeds)):
        with pytest.raises(gc.FeedError) as err:
            run()
        assert f"input 'labels': label {bad} at index 1 is out of range for 4 classes" \
            in str(err.value)
        assert_raised_outside_generated_code(err)
    prog(scores=np.ones((3, 4)), labels=np.array([0, 3, 1]))


def test_narrow_labels_are_checked_before_they_wrap():
    scores = gc.input("scores", ("batch", 4))
    labels = gc.input("labels", ("batch",), dtype="int32")
    prog = gc.compile([gc.take(scores, labels)], [scores, labels])
    with pytest.raises(gc.FeedError, match="label 4294967297 at index 0 is out of range") as err:
        prog(scores=np.ones((1, 4)), labels=np.array([2**32 + 1]))
    assert_raised_outside_generated_code(err)
    (got,) = prog(scores=np.arange(4.0)[None], labels=np.array([3], dtype=np.int64))
    assert got.tolist() == [3.0]


def test_other_narrow_integers_must_fit_their_dtype():
    counts = gc.input("counts", (2,), dtype="int32")
    prog = gc.compile([counts * 2], [counts])
    with pytest.raises(gc.FeedError, match=r"input 'counts': the value 4294967296 does not fit "
                                           r"int32 \(-2147483648\.\.2147483647\)"):
        prog(counts=np.array([1, 2**32]))
    with pytest.raises(gc.FeedError, match="-2147483649 does not fit int32"):
        gc.evaluate([counts * 2], {counts: np.array([-2**31 - 1, 0])})
    assert prog(counts=np.array([1, 7], dtype=np.uint64))[0].tolist() == [2.0, 14.0]
    top = gc.evaluate([counts], {counts: np.array([2**31 - 1, -2**31])})[0]
    assert top.dtype == np.int32 and top.tolist() == [2**31 - 1, -2**31]


def test_one_set_of_feeds_serves_a_function_and_its_gradients():
    """d(x*y + z)/dz reads none of the leaves: feeding them all is not a mistake."""
    x, y, z = (gc.input(n) for n in "xyz")
    f = x * y + z
    feeds = {x: 2.0, y: 3.0, z: 4.0}
    assert gc.evaluate([f], feeds)[0] == 10.0
    assert gc.evaluate(gc.grad(f, [z]), feeds)[0] == 1.0
    with pytest.raises(gc.FeedError, match="unknown feed 'w'"):
        gc.evaluate(gc.grad(f, [z]), {**feeds, "w": 1.0})
