"""Fuzzing the compiler with Hypothesis.

Well-shaped random graphs (elementwise ops with broadcasting, reductions, softmax and
friends, matmuls, concatenation, losses) must compute the same values as the reference
interpreter at every optimize level, and their gradients must match central finite
differences (float64). Ill-shaped graphs (operands that do not broadcast, bad matmul inner
dimensions, bad axes, wrong feeds) must raise a gc.GraphcError subclass with a message, never
an exception from inside the generated module. Hostile names (code, keywords, names the
module uses) must come out as harmless identifiers and never run.

Graphs are drawn as plain data (a ``Recipe``), so a failure prints a recipe that can be
pasted into ``@example`` as a regression test.

Profiles: "fuzz" (the default: bounded, derandomized, so the suite is fast and never flaky)
and "nightly" (many more fresh examples), chosen by ``GRAPHC_HYPOTHESIS_PROFILE=nightly``, the
variable that sets the profile of the whole suite (tests/conftest.py). They are
applied to this module's tests only, as decorators, leaving other modules' settings alone.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import os
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import sympy as sp
from helpers import numeric_gradient
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc

_common = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("fuzz", max_examples=30, derandomize=True, **_common)
settings.register_profile("nightly", max_examples=2000, derandomize=False, **_common)
FUZZ = settings.get_profile(
    "nightly" if os.environ.get("GRAPHC_HYPOTHESIS_PROFILE") == "nightly" else "fuzz")

LEVELS = (0, 1, 2)
#: Generated code against the interpreter (the same math, in another order after passes).
CODEGEN_RTOL = 1e-9
#: Autodiff against central differences with step 1e-6 (float64).
FD_RTOL, FD_ATOL = 1e-5, 1e-6

# --- recipes: random graphs as plain data ----------------------------------------------------
#: Smooth everywhere (safe for finite differences); operands are built from bounded values.
SMOOTH_UNARY: dict[str, Callable] = {
    "tanh": gc.tanh, "sigmoid": gc.sigmoid, "softplus": gc.softplus, "square": gc.square,
    "neg": lambda a: -a, "exp": lambda a: gc.exp(gc.tanh(a)),
    "log": lambda a: gc.log(1.0 + gc.square(a)), "sqrt": lambda a: gc.sqrt(1.0 + gc.square(a)),
}
KINKED_UNARY: dict[str, Callable] = {
    "relu": gc.relu, "abs": gc.abs, "leaky_relu": gc.leaky_relu, "elu": gc.elu,
}
SMOOTH_BINARY: dict[str, Callable] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (2.0 + gc.tanh(b)),
}
KINKED_BINARY: dict[str, Callable] = {"maximum": gc.maximum, "minimum": gc.minimum}
SMOOTH_REDUCE = {"sum": gc.sum, "mean": gc.mean}
UNARY = {**SMOOTH_UNARY, **KINKED_UNARY}
BINARY = {**SMOOTH_BINARY, **KINKED_BINARY}
REDUCE = {**SMOOTH_REDUCE, "max": gc.max}
AXIS_OPS = {"softmax": gc.softmax, "log_softmax": gc.log_softmax, "logsumexp": gc.logsumexp}
SMOOTH_LOSSES = ("softmax_cross_entropy", "mse", "sigmoid_cross_entropy")
KINKED_LOSSES = ("hinge", "l1")
MAX_SIZE = 24


@dataclass(frozen=True)
class Recipe:
    """Input shapes, then steps that each append one node to a pool that starts with the
    inputs: ("unary", f, i), ("binary", f, i, j), ("input", shape), ("reduce", f, i, axis,
    keepdims), ("axis", f, i, axis), ("matmul", i, n), ("transpose", i),
    ("concat", i, j, axis), ("loss", f, i). ``seed`` draws the values."""

    inputs: tuple[tuple[int, ...], ...]
    steps: tuple[tuple, ...]
    seed: int = 0


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)


@st.composite
def recipes(draw, smooth: bool = True) -> Recipe:
    """A well-shaped graph: every step is chosen among those its operands' shapes allow."""
    unary = list(SMOOTH_UNARY) + ([] if smooth else list(KINKED_UNARY))
    binary = list(SMOOTH_BINARY) + ([] if smooth else list(KINKED_BINARY))
    reduce = list(SMOOTH_REDUCE) + ([] if smooth else ["max"])
    losses = SMOOTH_LOSSES + (() if smooth else KINKED_LOSSES)
    inputs = tuple(draw(st.lists(small_shapes, min_size=1, max_size=2)))
    pool = list(inputs)
    steps: list[tuple] = []
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(pool) - 1))
        a = pool[i]
        kinds = ["unary", "binary", "input", "reduce"]
        kinds += ["axis", "transpose"] if a else []
        kinds += ["concat"] if a and 2 * _size(a) <= MAX_SIZE else []
        kinds += ["matmul"] if len(a) >= 2 else []
        kinds += ["loss"]
        kind = draw(st.sampled_from(kinds))
        if kind == "unary":
            step, shape = ("unary", draw(st.sampled_from(unary)), i), a
        elif kind == "binary":
            partners = [j for j, b in enumerate(pool) if _broadcasts(a, b)]
            j = draw(st.sampled_from(partners))
            step = ("binary", draw(st.sampled_from(binary)), i, j)
            shape = np.broadcast_shapes(a, pool[j])
        elif kind == "input":
            keep = draw(st.integers(0, len(a)))
            shape = tuple(d if draw(st.booleans()) else 1 for d in a[len(a) - keep:])
            step = ("input", shape)
        elif kind == "reduce":
            axis = draw(st.none() | st.integers(-len(a), len(a) - 1)) if a else None
            keepdims = draw(st.booleans())
            step = ("reduce", draw(st.sampled_from(reduce)), i, axis, keepdims)
            axes = range(len(a)) if axis is None else [axis % len(a)]
            shape = tuple(1 if k in axes else d for k, d in enumerate(a) if keepdims
                          or k not in axes)
        elif kind == "axis":
            f, axis = draw(st.sampled_from(list(AXIS_OPS))), draw(st.integers(-len(a), len(a) - 1))
            step = ("axis", f, i, axis)
            shape = a if f != "logsumexp" else a[: axis % len(a)] + a[axis % len(a) + 1:]
        elif kind == "transpose":
            step, shape = ("transpose", i), a[::-1]
        elif kind == "concat":
            axis = draw(st.integers(0, len(a) - 1))
            j = draw(st.sampled_from([j for j, b in enumerate(pool) if b == a]))
            step = ("concat", i, j, axis)
            shape = a[:axis] + (2 * a[axis],) + a[axis + 1:]
        elif kind == "matmul":
            n = draw(st.integers(1, 3))
            step, shape = ("matmul", i, n), a[:-1] + (n,)
        else:
            by_label = ("softmax_cross_entropy", "hinge")  # these need (rows, classes) scores
            allowed = [f for f in losses if len(a) == 2 or f not in by_label]
            step, shape = ("loss", draw(st.sampled_from(allowed)), i), ()
        steps.append(step)
        pool.append(shape)
    return Recipe(inputs, tuple(steps), draw(st.integers(0, 2**16)))


@dataclass
class Built:
    """A recipe made into a graph: the scalar ``y``, the pool's unused (terminal) nodes, the
    input nodes and their values, and the parameters."""

    y: gc.Node
    terminals: list[gc.Node]
    inputs: list[gc.Node]
    feeds: dict[gc.Node, np.ndarray]
    params: list[gc.Node]


def build(recipe: Recipe) -> Built:
    """Declare the graph of a recipe, with values: inputs in [-1, 1], integer labels, targets
    in [0, 1], small parameters; ``y`` sums every terminal weighted by random constants."""
    rng = np.random.default_rng(recipe.seed)
    feeds: dict[gc.Node, np.ndarray] = {}
    params: list[gc.Node] = []

    def new_input(shape, values=None, dtype="float64"):
        node = gc.input(f"in{len(feeds)}", shape, dtype=dtype)
        feeds[node] = rng.uniform(-1, 1, shape) if values is None else values
        return node

    pool = [new_input(s) for s in recipe.inputs]
    used: set[int] = set()
    for step in recipe.steps:
        kind, *args = step
        if kind == "unary":
            node = UNARY[args[0]](pool[args[1]])
        elif kind == "binary":
            node = BINARY[args[0]](pool[args[1]], pool[args[2]])
        elif kind == "input":
            node = new_input(args[0])
        elif kind == "reduce":
            f, i, axis, keepdims = args
            node = REDUCE[f](pool[i], axis=axis, keepdims=keepdims)
        elif kind == "axis":
            node = AXIS_OPS[args[0]](pool[args[1]], axis=args[2])
        elif kind == "transpose":
            node = gc.transpose(pool[args[0]])
        elif kind == "concat":
            node = gc.concatenate([pool[args[0]], pool[args[1]]], axis=args[2])
        elif kind == "matmul":
            a = pool[args[0]]
            w = gc.param(f"w{len(params)}", (a.shape[-1], args[1]),
                         init=rng.uniform(-1, 1, (a.shape[-1], args[1])))
            params.append(w)
            node = a @ w
        else:
            node = _loss(args[0], pool[args[1]], new_input, rng)
        used.update(_operands(step))
        pool.append(node)
    terminals = [n for k, n in enumerate(pool) if k not in used]
    y = None
    for t in terminals:
        weighted = t * float(rng.uniform(0.5, 1.5)) if t.shape == () else \
            gc.sum(t * gc.constant(rng.uniform(0.5, 1.5, t.shape)))
        y = weighted if y is None else y + weighted
    return Built(y, terminals, list(feeds), feeds, params)


def _operands(step: tuple) -> tuple[int, ...]:
    """The pool indices a step reads."""
    kind = step[0]
    if kind == "input":
        return ()
    if kind in ("transpose", "matmul"):
        return (step[1],)
    if kind == "concat":
        return step[1], step[2]
    if kind == "binary":
        return step[2], step[3]
    return (step[2],)


def _loss(kind: str, scores: gc.Node, new_input, rng) -> gc.Node:
    if kind in ("softmax_cross_entropy", "hinge"):
        rows, classes = scores.shape
        labels = new_input((rows,), rng.integers(0, classes, rows), dtype="int64")
        f = gc.softmax_cross_entropy if kind == "softmax_cross_entropy" else gc.hinge
        return f(scores, labels)
    target = new_input(scores.shape, rng.uniform(0, 1, scores.shape))
    return {"mse": gc.mse, "l1": gc.l1, "sigmoid_cross_entropy": gc.sigmoid_cross_entropy}[
        kind](scores, target)


# --- checks ---------------------------------------------------------------------------------
def by_name(feeds: dict[gc.Node, np.ndarray]) -> dict[str, np.ndarray]:
    return {n.name: v for n, v in feeds.items()}


def run(fn: Callable[..., list], what: str, *args, **kwargs) -> list:
    """``fn(*args, **kwargs)``: a generated program's outputs. An exception from inside it is
    re-raised from here, so that Hypothesis sees one failure to shrink (the generated module's
    file name, part of where an error comes from, changes at every compile)."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:
        raise AssertionError(f"{what} raised {type(err).__name__}: {err}") from err


def assert_close(got, want, rtol: float, atol: float, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def check_against_interpreter(built: Built, wrt: list[gc.Node]) -> list[gc.Node]:
    """At every optimize level, the program's outputs (y, the terminals, the gradients of y)
    equal the interpreter's. Returns the gradient nodes."""
    grads = gc.grad(built.y, wrt)
    outputs = [built.y, *built.terminals, *grads]
    want = gc.evaluate(outputs, built.feeds)
    scale = max(1.0, *(float(np.max(np.abs(w), initial=0)) for w in want))
    for level in LEVELS:
        prog = gc.compile(outputs, built.inputs, optimize=level)
        got = run(prog, f"optimize={level}", **by_name(built.feeds))
        assert len(got) == len(outputs)
        for k, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, CODEGEN_RTOL, 1e-12 * scale, f"optimize={level} output {k}")
    return grads


def check_finite_differences(built: Built, wrt: list[gc.Node], grads: list[gc.Node]) -> None:
    """Gradients (as compiled at optimize=2) against central differences of y."""
    prog = gc.compile([built.y, *grads], built.inputs, optimize=2)
    feeds = by_name(built.feeds)
    y, *analytic = run(prog, "optimize=2", **feeds)
    atol = FD_ATOL * max(1.0, abs(float(y)))
    for x, got in zip(wrt, analytic):
        storage = built.feeds[x] if x.op.name == "input" else x.value
        numeric = numeric_gradient(lambda: float(prog(**feeds)[0]), storage)
        assert_close(got, numeric, FD_RTOL, atol, f"d y / d {x.name}")


def float_leaves(built: Built) -> list[gc.Node]:
    return [n for n in built.inputs if n.dtype.kind == "f"] + built.params


# --- well-shaped graphs ---------------------------------------------------------------------
@FUZZ
@given(recipes(smooth=True))
@example(Recipe(inputs=((2,),), steps=(("binary", "sub", 0, 0),)))  # x - x: zeros, not 0
@example(Recipe(inputs=((2, 3),), steps=(("axis", "softmax", 0, 0), ("reduce", "sum", 1, 0,
                                                                        False))))
def test_smooth_graphs_match_interpreter_and_finite_differences(recipe):
    built = build(recipe)
    wrt = float_leaves(built)
    grads = check_against_interpreter(built, wrt)
    check_finite_differences(built, wrt, grads)


@FUZZ
@given(recipes(smooth=False))
def test_graphs_with_kinks_match_the_interpreter(recipe):
    """relu, abs, max... : values and (almost-everywhere) gradients as the interpreter has
    them; no finite differences, which are wrong at a kink."""
    built = build(recipe)
    check_against_interpreter(built, float_leaves(built))


@st.composite
def networks(draw):
    """A dense network with a named batch dimension: layers of matmul (+ bias) and a smooth
    activation, then a loss, with the L2 penalty sometimes added."""
    dim = draw(st.sampled_from(["batch", "n", "def", "np", "main", "None"]))
    batch, features = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    widths = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    acts = tuple(draw(st.sampled_from(["tanh", "sigmoid", "softplus", "square"]))
                 for _ in widths[:-1])
    return (dim, batch, features, tuple(widths), acts, draw(st.booleans()),
            draw(st.sampled_from(SMOOTH_LOSSES)), draw(st.sampled_from([0.0, 0.1])),
            draw(st.integers(0, 2**16)))


@FUZZ
@given(networks())
def test_networks_with_a_batch_dimension(network):
    dim, batch, features, widths, acts, bias, loss, lam, seed = network
    rng = np.random.default_rng(seed)
    x = gc.input("x", (dim, features))
    feeds = {x: rng.uniform(-1, 1, (batch, features))}
    h, params, fan_in = x, [], features
    for k, width in enumerate(widths):
        w = gc.param(f"W{k}", (fan_in, width), init=rng.uniform(-1, 1, (fan_in, width)))
        params.append(w)
        h = h @ w
        if bias:
            b = gc.param(f"b{k}", (width,), init=rng.uniform(-1, 1, width))
            params.append(b)
            h = h + b
        if k < len(acts):
            h = SMOOTH_UNARY[acts[k]](h)
        fan_in = width
    if loss == "softmax_cross_entropy":
        target = gc.input("target", (dim,), dtype="int64")
        feeds[target] = rng.integers(0, widths[-1], batch)
        y = gc.softmax_cross_entropy(h, target)
    else:
        target = gc.input("target", (dim, widths[-1]))
        feeds[target] = rng.uniform(0, 1, (batch, widths[-1]))
        y = (gc.mse if loss == "mse" else gc.sigmoid_cross_entropy)(h, target)
    if lam:
        y = y + gc.l2_penalty(params, lam)
    built = Built(y, [h], [x, target], feeds, params)
    wrt = [x, *params]
    grads = check_against_interpreter(built, wrt)
    check_finite_differences(built, wrt, grads)


# --- ill-shaped graphs: a GraphcError with a message, never a crash inside generated code ------
def graphc_error(build_and_run: Callable[[], object], kind: type = gc.GraphcError) -> str:
    """The message of the GraphcError that ``build_and_run`` raises (of ``kind``), after
    checking that no frame of the traceback is in a generated module."""
    with pytest.raises(gc.GraphcError) as info:
        build_and_run()
    assert isinstance(info.value, kind), f"{type(info.value).__name__}: {info.value}"
    frames = traceback.extract_tb(info.tb)
    assert not [f for f in frames if f.filename.startswith("<graphc-generated")]
    message = str(info.value)
    assert message.strip()
    return message


non_broadcastable = st.tuples(small_shapes, small_shapes).filter(
    lambda p: not _broadcasts(*p))


@FUZZ
@given(non_broadcastable, st.sampled_from(sorted(BINARY)))
def test_operands_that_do_not_broadcast(shapes, op):
    a, b = gc.input("a", shapes[0]), gc.input("b", shapes[1])
    message = graphc_error(lambda: BINARY[op](a, b), gc.ShapeError)
    assert "do not broadcast" in message and "test_fuzz.py" in message


@FUZZ
@given(hnp.array_shapes(min_dims=0, max_dims=4, max_side=4),
       hnp.array_shapes(min_dims=0, max_dims=4, max_side=4))
def test_matmul_shapes_that_do_not_fit(a_shape, b_shape):
    fits = (len(a_shape) >= 2 and len(b_shape) >= 2 and a_shape[-1] == b_shape[-2]
            and _broadcasts(a_shape[:-2], b_shape[:-2]))
    assume(not fits)
    a, b = gc.input("a", a_shape), gc.input("b", b_shape)
    message = graphc_error(lambda: a @ b, gc.ShapeError)
    assert message.startswith("matmul: ")


@FUZZ
@given(small_shapes, st.integers(-8, 8),
       st.sampled_from(["sum", "mean", "max", "argmax", *AXIS_OPS]))
def test_axes_out_of_range(shape, axis, op):
    assume(not -len(shape) <= axis < len(shape))
    x = gc.input("x", shape)
    fn = {"sum": gc.sum, "mean": gc.mean, "max": gc.max, "argmax": gc.argmax, **AXIS_OPS}[op]
    message = graphc_error(lambda: fn(x, axis=axis), gc.ShapeError)
    assert str(axis) in message


@FUZZ
@given(hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), st.data())
def test_transpose_axes_that_are_not_a_permutation(shape, data):
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=len(shape),
                              max_size=len(shape)))
    assume(sorted(axes) != list(range(len(shape))))
    x = gc.input("x", shape)
    assert "not a permutation" in graphc_error(lambda: gc.transpose(x, axes), gc.ShapeError)


@FUZZ
@given(small_shapes, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
def test_reshape_to_another_size(shape, target):
    assume(_size(shape) != _size(target))
    x = gc.input("x", shape)
    assert "cannot reshape" in graphc_error(lambda: gc.reshape(x, target), gc.ShapeError)


@FUZZ
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3),
       hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), st.integers(0, 2))
def test_concatenate_shapes_that_differ_off_the_axis(a_shape, b_shape, axis):
    assume(axis < len(a_shape))
    fits = len(a_shape) == len(b_shape) and all(
        p == q for k, (p, q) in enumerate(zip(a_shape, b_shape)) if k != axis)
    assume(not fits)
    a, b = gc.input("a", a_shape), gc.input("b", b_shape)
    graphc_error(lambda: gc.concatenate([a, b], axis=axis), gc.ShapeError)


@FUZZ
@given(hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
       st.sampled_from(["int64", "float32", "int32", "float64"]), small_shapes,
       st.sampled_from(["float64", "int64", "complex128", "bool"]))
def test_wrong_feeds_are_refused_before_any_generated_code_runs(shape, dtype, fed, fed_dtype):
    """A FeedError for a fed array of the wrong rank, size or kind of number; never a crash
    inside the program."""
    x = gc.input("x", shape, dtype=dtype)
    prog = gc.compile([gc.sum(gc.square(x))], [x])
    value = np.zeros(fed, dtype=fed_dtype)
    wrong_kind = fed_dtype in ("complex128",) or (dtype.startswith("int") and fed_dtype ==
                                                  "float64")
    assume(fed != shape or wrong_kind)
    assert "input 'x'" in graphc_error(lambda: prog(x=value), gc.FeedError)


def test_missing_unknown_and_mismatched_feeds():
    x, z = gc.input("x", ("batch", 2)), gc.input("z", ("batch",))
    prog = gc.compile([gc.sum(x) + gc.sum(z)], [x, z])
    assert "missing input(s) ['z']" in graphc_error(lambda: prog(x=np.zeros((3, 2))))
    assert "unknown feed 'w'" in graphc_error(
        lambda: prog(x=np.zeros((3, 2)), z=np.zeros(3), w=1))
    message = graphc_error(lambda: prog(x=np.zeros((3, 2)), z=np.zeros(4)), gc.FeedError)
    assert "dimension 'batch' is 4 here but 3" in message


def test_softmax_cross_entropy_needs_integer_labels_of_the_batch_shape():
    scores = gc.input("scores", ("batch", 3))
    floats = gc.input("labels", ("batch",))
    assert "labels must be integers" in graphc_error(
        lambda: gc.softmax_cross_entropy(scores, floats), gc.ShapeError)
    wrong = gc.input("labels", (4,), dtype="int64")
    assert "(batch, classes)" in graphc_error(
        lambda: gc.softmax_cross_entropy(scores, wrong), gc.ShapeError)


def test_concatenating_scalars_is_a_shape_error():
    s = gc.scalar("s")
    graphc_error(lambda: gc.concatenate([s, s]), gc.ShapeError)


def test_a_negative_dimension_is_a_shape_error():
    x = gc.input("x", (2, 3))
    graphc_error(lambda: gc.reshape(x, (-2, 3)), gc.ShapeError)


def test_a_label_out_of_range_is_a_feed_error():
    scores = gc.input("scores", ("batch", 3))
    labels = gc.input("labels", ("batch",), dtype="int64")
    prog = gc.compile([gc.softmax_cross_entropy(scores, labels)], [scores, labels])
    graphc_error(lambda: prog(scores=np.zeros((2, 3)), labels=np.array([0, 5])), gc.FeedError)


@pytest.mark.parametrize("make", [lambda x: x + float("inf"), lambda x: x * float("nan"),
                                  lambda x: gc.maximum(x, float("nan"))],
                         ids=["x+inf", "x*nan", "maximum(x,nan)"])
def test_non_finite_constants_compile(make):
    x = gc.input("x", (2,))
    out = gc.sum(make(x))
    want = gc.evaluate([out], {x: np.ones(2)})[0]
    np.testing.assert_array_equal(gc.compile([out], [x])(x=np.ones(2))[0], want)


# --- hostile names ------------------------------------------------------------------------
#: Each payload, if it ever ran, would set builtins.GRAPHC_PWNED.
PAYLOAD = "__import__('builtins').__setattr__('GRAPHC_PWNED', 1)"
HOSTILE = [
    PAYLOAD, f"x\n{PAYLOAD}\n", f"a): pass\n{PAYLOAD}\ndef f(", f"'''\n{PAYLOAD}\n'''",
    f'"""\n{PAYLOAD}', f"x # \n{PAYLOAD}", f"x\r{PAYLOAD}", "\\", "np", "main", "numpy",
    "sigmoid", "def", "return", "None", "lambda", "match", "_", "__builtins__", "sum", "1x",
    "x.y", "x y", "é", "Ω", "x-y", "{x}", "%s", "x\x00y", "W", "d_W", "x",
]
#: The generated module's own private names, which no node's name may shadow.
SHADOWING = ["_buffer", "_buffers", "_check_finite", "_NODES", "_saved"]
names = st.one_of(st.sampled_from(HOSTILE + SHADOWING), st.text(min_size=1, max_size=10))


@FUZZ
@given(st.lists(names, min_size=6, max_size=6))
@example([f"x\n{PAYLOAD}\n"] * 6)
@example(["x", "x", "x", "x", "x", "y"])
def test_hostile_names_are_only_ever_names(chosen):
    x_name, w_name, h_name, act_name, label_name, symbol_name = chosen
    x = gc.input(x_name, ("batch", 3))
    labels = gc.input(label_name, ("batch",), dtype="int64")
    W = gc.param(w_name, (3, 2), seed=0)
    h = (x @ W).named(h_name)
    z = sp.Symbol(symbol_name)
    act = gc.from_sympy(z / (1 + sp.Abs(z)), {z: h}).named(act_name)
    loss = gc.softmax_cross_entropy(act, labels)
    outputs = [loss, *gc.grad(loss, [x, W])]
    feeds = {x: np.linspace(-1, 1, 12).reshape(4, 3), labels: np.array([0, 1, 1, 0])}
    if x_name == label_name:
        assert "two inputs are named" in graphc_error(lambda: gc.compile(outputs, [x, labels]))
        return
    want = gc.evaluate(outputs, feeds)
    programs = [gc.compile(outputs, [x, labels], optimize=level) for level in LEVELS]
    programs.append(gc.compile(outputs, [x, labels], check_numerics=True))
    for prog in programs:
        ast.parse(prog.source)
        for got, w in zip(run(prog, prog.source, **by_name(feeds)), want):
            assert_close(got, w, CODEGEN_RTOL, 1e-12, prog.source)
    with tempfile.TemporaryDirectory() as directory:
        module = standalone(programs[-1], directory)
        for got, w in zip(run(module.main, "standalone", **by_name(feeds)), want):
            assert_close(got, w, CODEGEN_RTOL, 1e-12, "standalone module")
    assert not hasattr(builtins, "GRAPHC_PWNED")


def standalone(prog, directory: str):
    """``prog`` saved as a standalone module (with its .npz) and imported."""
    path = os.path.join(directory, "generated.py")
    prog.save(path)
    spec = importlib.util.spec_from_file_location("generated", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")
@pytest.mark.parametrize("name", SHADOWING)
def test_module_private_names_cannot_be_shadowed(name, tmp_path):
    x = gc.input("x", ("batch", 3))
    W, b = gc.param(name, (3, 2), init=1.0), gc.param("b", (2,), init=0.5)
    out = gc.sum(gc.log(x @ W + b))
    outputs = [out, *gc.grad(out, [W, b])]
    prog = gc.compile(outputs, [x], check_numerics=True)
    feed = np.ones((4, 3))
    want = gc.evaluate(outputs, {x: feed})
    for got, w in zip(prog(x=feed), want):
        assert_close(got, w, CODEGEN_RTOL, 1e-12, "program")
    for got, w in zip(standalone(prog, str(tmp_path)).main(x=feed), want):
        assert_close(got, w, CODEGEN_RTOL, 1e-12, "standalone module")
    message = graphc_error(lambda: prog(x=-feed), gc.NumericsError)  # log of -2.5
    assert message.startswith("NaN produced by forward node ")
