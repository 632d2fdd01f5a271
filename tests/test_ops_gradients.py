"""Every op's gradient against central finite differences (float64, random shapes, broadcasting
included), through both the reference interpreter and compiled programs at optimize 0 and 2;
then whole networks and second derivatives."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp
from helpers import (
    away_from_zero,
    broadcast_pair,
    check_gradients,
    distinct,
    examples,
    labels_for,
    normal,
    numeric_gradient,
    positive,
    run,
    seeds,
    shapes,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc

#: name -> build(data, rng) returning (output node, nodes to differentiate by, feeds).
CASES = {}


def case(name):
    def register(build):
        assert name not in CASES
        CASES[name] = build
        return build

    return register


def binary(name, fn, gen_a=normal, gen_b=normal):
    @case(name)
    def build(data, rng):
        sa, sb = data.draw(broadcast_pair(), label="shapes")
        a, b = gc.input("a", sa), gc.input("b", sb)
        return fn(a, b), [a, b], {a: gen_a(rng, sa), b: gen_b(rng, sb)}


def unary(name, fn, gen=normal):
    @case(name)
    def build(data, rng):
        s = data.draw(shapes(), label="shape")
        x = gc.input("x", s)
        return fn(x), [x], {x: gen(rng, s)}


def grid(offset):
    """Values on a grid of step 1 plus ``offset``: a grid at .25 and one at .75 never tie."""
    return lambda rng, shape: rng.integers(-3, 3, shape) + offset


# --- elementwise arithmetic, with broadcasting ---------------------------------------------------
binary("add", lambda a, b: a + b)
binary("subtract", lambda a, b: a - b)
binary("multiply", lambda a, b: a * b)
binary("divide", lambda a, b: a / b, gen_b=away_from_zero)
binary("gc.divide", gc.divide, gen_b=lambda rng, s: away_from_zero(rng, s, lo=0.5))
binary("power", lambda a, b: a**b, gen_a=positive)
binary("maximum", gc.maximum, grid(0.25), grid(0.75))
binary("minimum", gc.minimum, grid(0.25), grid(0.75))
binary("branches add", lambda a, b: a * b + gc.tanh(a) * (b - a) / (1 + b * b))
unary("neg", lambda x: -x)
unary("numbers as constants", lambda x: 2.5 * x - 1 / (x * x + 1) + x / 4 - 3)
unary("power by a number", lambda x: x**3 + x**-2, away_from_zero)
unary("number to a power", lambda x: 3.0**x)
unary("square", gc.square)
unary("exp", gc.exp)
unary("log", gc.log, positive)
unary("sqrt", gc.sqrt, positive)
unary("abs", gc.abs, away_from_zero)
unary("tanh", gc.tanh)
unary("sigmoid", gc.sigmoid, lambda rng, s: normal(rng, s, 3.0))
unary("relu", gc.relu, away_from_zero)
unary("leaky_relu", gc.leaky_relu, away_from_zero)
unary("leaky_relu alpha 0.2", lambda x: gc.leaky_relu(x, 0.2), away_from_zero)
unary("elu", gc.elu, away_from_zero)
unary("elu alpha 0.5", lambda x: gc.elu(x, alpha=0.5), away_from_zero)
unary("softplus", gc.softplus, lambda rng, s: normal(rng, s, 3.0))
unary("chain of activations", lambda x: gc.sigmoid(gc.elu(gc.tanh(x) * 2) + gc.softplus(-x)))


@case("where")
def _where(data, rng):
    sc, sa, sb = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3,
                                                             max_side=3)).input_shapes
    c, a, b = gc.input("c", sc), gc.input("a", sa), gc.input("b", sb)
    feeds = {c: away_from_zero(rng, sc), a: normal(rng, sa), b: normal(rng, sb)}
    return gc.where(c > 0, a * a, gc.exp(b)), [a, b], feeds


@case("where with a number")
def _where_number(data, rng):
    s = data.draw(shapes())
    x = gc.input("x", s)
    return gc.where(x >= 0, x, 0.1 * x) + gc.where(x < 0, 1.0, x), [x], {
        x: away_from_zero(rng, s)}


# --- from_sympy: a user's activation, its derivative derived by SymPy ----------------------------
@case("from_sympy softsign")
def _softsign(data, rng):
    s = data.draw(shapes())
    z = sp.Symbol("z")
    x = gc.input("x", s)
    return gc.from_sympy(z / (1 + sp.Abs(z)), {z: x}), [x], {x: away_from_zero(rng, s)}


@case("from_sympy two inputs")
def _two_inputs(data, rng):
    sa, sb = data.draw(broadcast_pair())
    u, v = sp.symbols("u v")
    a, b = gc.input("a", sa), gc.input("b", sb)
    expr = u * sp.exp(-v**2) + sp.log(1 + u**2) * v - sp.tanh(u * v) / 3
    return gc.from_sympy(expr, {u: a, v: b}), [a, b], {a: normal(rng, sa), b: normal(rng, sb)}


@case("from_sympy trigonometric")
def _trig(data, rng):
    sa, sb = data.draw(broadcast_pair())
    u, v = sp.symbols("u v")
    a, b = gc.input("a", sa), gc.input("b", sb)
    expr = sp.sin(u) * sp.cos(v) + sp.atan(u * v) + sp.cosh(v / 2)
    return gc.from_sympy(expr, {u: a, v: b}), [a, b], {a: normal(rng, sa), b: normal(rng, sb)}


@case("from_sympy of nodes and numbers")
def _sympy_mixed(data, rng):
    s = data.draw(shapes(min_dims=1))
    z, k = sp.symbols("z k")
    x = gc.input("x", s)
    y = gc.from_sympy(sp.Max(z, k * z), {z: gc.tanh(x) * 2, k: 0.3})
    return y, [x], {x: away_from_zero(rng, s)}


# --- tensor ops -----------------------------------------------------------------------------------
@case("matmul 2-D")
def _matmul(data, rng):
    n, k, m = data.draw(st.tuples(*[st.integers(1, 4)] * 3))
    a, b = gc.input("a", (n, k)), gc.input("b", (k, m))
    return a @ b, [a, b], {a: normal(rng, (n, k)), b: normal(rng, (k, m))}


@case("matmul batched")
def _matmul_batched(data, rng):
    bt, n, k, m = data.draw(st.tuples(*[st.integers(1, 3)] * 4))
    a, b = gc.input("a", (bt, n, k)), gc.input("b", (bt, k, m))
    return gc.matmul(a, b), [a, b], {a: normal(rng, a.shape), b: normal(rng, b.shape)}


@case("matmul broadcast batch")
def _matmul_broadcast(data, rng):
    batch_a, batch_b = data.draw(broadcast_pair(max_dims=2, max_side=3))
    n, k, m = data.draw(st.tuples(*[st.integers(1, 3)] * 3))
    a, b = gc.input("a", batch_a + (n, k)), gc.input("b", batch_b + (k, m))
    return a @ b, [a, b], {a: normal(rng, a.shape), b: normal(rng, b.shape)}


@case("matmul with a named batch")
def _matmul_named(data, rng):
    batch, k, m = data.draw(st.tuples(*[st.integers(1, 4)] * 3))
    x = gc.input("x", ("batch", k))
    w = gc.input("w", (k, m))
    b = gc.input("b", (m,))
    y = gc.mean(gc.tanh(x @ w + b), axis=0) + gc.mean(x @ w, keepdims=True)
    return y, [x, w, b], {x: normal(rng, (batch, k)), w: normal(rng, (k, m)), b: normal(rng, m)}


@case("transpose .T")
def _t(data, rng):
    s = data.draw(shapes(min_dims=1))
    x = gc.input("x", s)
    return x.T * gc.transpose(x).T.T, [x], {x: normal(rng, s)}


@case("transpose axes")
def _transpose(data, rng):
    s = data.draw(shapes(min_dims=1, max_dims=4, max_side=3))
    axes = data.draw(st.permutations(range(len(s))))
    if data.draw(st.booleans()):
        axes = [a - len(s) for a in axes]
    x = gc.input("x", s)
    return gc.transpose(x, axes), [x], {x: normal(rng, s)}


@case("reshape")
def _reshape(data, rng):
    s = data.draw(shapes(min_dims=1, max_dims=3))
    n = int(np.prod(s))
    first = data.draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    target = data.draw(st.sampled_from([(first, n // first), (first, -1), (-1, first), (-1,),
                                        (n,), (1, n, 1), (first, 1, -1)]))
    x = gc.input("x", s)
    y = gc.reshape(x, target)
    assert -1 not in y.shape and int(np.prod(y.shape)) == n
    return gc.tanh(y), [x], {x: normal(rng, s)}


@case("reshape with a named batch")
def _reshape_named(data, rng):
    batch, h, w = data.draw(st.tuples(*[st.integers(1, 3)] * 3))
    x = gc.input("x", ("batch", h, w))
    flat = gc.flatten(x)
    assert flat.shape == ("batch", h * w)
    with pytest.raises(gc.ShapeError, match="named dimension"):
        gc.reshape(flat, (-1, w, h))
    return gc.reshape(flat, ("batch", -1, h)), [x], {x: normal(rng, (batch, h, w))}


@case("concatenate")
def _concatenate(data, rng):
    s = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(s), len(s) - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    xs = []
    for i, k in enumerate(sizes):
        shape = list(s)
        shape[axis] = k
        xs.append(gc.input(f"x{i}", tuple(shape)))
    y = gc.concatenate(xs, axis=axis)
    return y * y, xs, {x: normal(rng, x.shape) for x in xs}


@case("concatenate reuses an operand")
def _concatenate_twice(data, rng):
    s = data.draw(shapes(min_dims=2, max_dims=2))
    x = gc.input("x", s)
    return gc.concatenate([x, gc.exp(x), x], axis=1), [x], {x: normal(rng, s)}


# --- reductions -----------------------------------------------------------------------------------
def _axes(data, ndim):
    """None, one axis (maybe negative) or a tuple of axes."""
    one = st.integers(-ndim, ndim - 1) if ndim else st.nothing()
    several = st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).map(tuple) \
        if ndim else st.just(())
    return data.draw(st.one_of(st.none(), one, several), label="axis")


for _name, _fn, _gen in [("sum", gc.sum, normal), ("mean", gc.mean, normal),
                         ("max", gc.max, distinct)]:
    def _build(data, rng, fn=_fn, gen=_gen):
        s = data.draw(shapes())
        axis = _axes(data, len(s))
        keepdims = data.draw(st.booleans(), label="keepdims")
        x = gc.input("x", s)
        return fn(x, axis=axis, keepdims=keepdims), [x], {x: gen(rng, s)}

    case(f"reduce {_name}")(_build)


def test_max_ties_share_the_gradient():
    x = gc.input("x", (3, 4))
    # the maximum of every row appears twice; the gradient is split between the two
    value = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, -1.0, 0.5], [0.0, -1.0, 5.0, 5.0]])
    grads = gc.grad(gc.sum(gc.max(x, axis=1) * np.array([1.0, 2.0, 3.0])), x)
    expected = np.array([[0, 0.5, 0.5, 0], [1, 1, 0, 0], [0, 0, 1.5, 1.5]])
    got = [gc.evaluate(grads, {x: value})[0]]
    got += [gc.compile(grads, [x], optimize=level)(x=value)[0] for level in (0, 1, 2)]
    for g in got:
        np.testing.assert_allclose(g, expected)


@case("mean over a named batch")
def _mean_named(data, rng):
    batch, k = data.draw(st.tuples(st.integers(1, 5), st.integers(1, 3)))
    axis = data.draw(st.sampled_from([None, 0, 1, (0, 1), -2]))
    keepdims = data.draw(st.booleans())
    x = gc.input("x", ("batch", k))
    return gc.mean(x * x, axis=axis, keepdims=keepdims), [x], {x: normal(rng, (batch, k))}


# --- network outputs ------------------------------------------------------------------------------
for _name, _fn in [("softmax", gc.softmax), ("log_softmax", gc.log_softmax)]:
    def _build(data, rng, fn=_fn):
        s = data.draw(shapes(min_dims=1))
        axis = data.draw(st.integers(-len(s), len(s) - 1))
        x = gc.input("x", s)
        return fn(x, axis=axis), [x], {x: normal(rng, s, 2.0)}

    case(_name)(_build)


@case("logsumexp")
def _logsumexp(data, rng):
    s = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(s), len(s) - 1))
    keepdims = data.draw(st.booleans())
    x = gc.input("x", s)
    return gc.logsumexp(x, axis=axis, keepdims=keepdims), [x], {x: normal(rng, s, 2.0)}


@case("logsumexp of large values")
def _logsumexp_large(data, rng):
    x = gc.input("x", (2, 3))
    return gc.logsumexp(x, axis=1), [x], {x: normal(rng, (2, 3)) + 800.0}


def _scores_and_labels(data, rng, named=False):
    batch, classes = data.draw(st.tuples(st.integers(1, 5), st.integers(1, 4)))
    scores = gc.input("scores", ("batch" if named else batch, classes))
    labels = gc.input("labels", ("batch" if named else batch,), dtype="int64")
    feeds = {scores: normal(rng, (batch, classes), 2.0), labels: labels_for(rng, batch, classes)}
    return scores, labels, feeds


@case("take labels")
def _take(data, rng):
    scores, labels, feeds = _scores_and_labels(data, rng)
    return gc.take(gc.tanh(scores), labels), [scores], feeds


@case("softmax_cross_entropy")
def _sce(data, rng):
    scores, labels, feeds = _scores_and_labels(data, rng, named=data.draw(st.booleans()))
    return gc.softmax_cross_entropy(scores, labels), [scores], feeds


@case("one_hot and log_softmax cross-entropy")
def _one_hot(data, rng):
    scores, labels, feeds = _scores_and_labels(data, rng, named=True)
    onehot = gc.one_hot(labels, scores.shape[1])
    return -gc.mean(gc.sum(onehot * gc.log_softmax(scores), axis=1)), [scores], feeds


# --- losses ---------------------------------------------------------------------------------------
@case("sigmoid_cross_entropy")
def _bce(data, rng):
    s = data.draw(shapes())
    logits, targets = gc.input("logits", s), gc.input("targets", s)
    feeds = {logits: normal(rng, s, 3.0), targets: rng.uniform(0, 1, s)}
    return gc.sigmoid_cross_entropy(logits, targets), [logits, targets], feeds


@case("mse")
def _mse(data, rng):
    sa, sb = data.draw(broadcast_pair())
    p, t = gc.input("prediction", sa), gc.input("target", sb)
    return gc.mse(p, t), [p, t], {p: normal(rng, sa), t: normal(rng, sb)}


@case("l1")
def _l1(data, rng):
    s = data.draw(shapes())
    p, t = gc.input("prediction", s), gc.input("target", s)
    target = normal(rng, s)
    return gc.l1(p, t), [p, t], {p: target + away_from_zero(rng, s), t: target}


@case("hinge")
def _hinge(data, rng):
    scores, labels, feeds = _scores_and_labels(data, rng, named=data.draw(st.booleans()))
    value = feeds[scores]
    # keep every margin s_j - s_y + 1 away from the hinge's kink at 0
    rows = np.arange(len(value))
    while np.min(np.abs(value - value[rows, feeds[labels]][:, None] + 1)) < 0.05:
        value = normal(rng, value.shape, 2.0)
    feeds[scores] = value
    return gc.hinge(scores, labels), [scores], feeds


@case("l2_penalty of parameters")
def _l2(data, rng):
    s1, s2 = data.draw(shapes()), data.draw(shapes())
    lam = data.draw(st.floats(0.01, 2.0))
    w1 = gc.param("w1", s1, init=normal(rng, s1))
    w2 = gc.param("w2", s2, init=normal(rng, s2))
    return gc.l2_penalty([w1, w2], lam), [w1, w2], {}


#: Cases whose SymPy expressions take seconds to compile at optimize=2 (the simplify pass):
#: fewer examples.
SLOW = ["from_sympy trigonometric", "from_sympy two inputs"]


@pytest.mark.parametrize("name", sorted(set(CASES) - set(SLOW)))
@given(data=st.data(), seed=seeds)
@settings(max_examples=examples(4))
def test_op_gradient_matches_finite_differences(name, data, seed):
    rng = np.random.default_rng(seed)
    out, wrt, feeds = CASES[name](data, rng)
    check_gradients(out, wrt, feeds, seed=seed)


@pytest.mark.parametrize("name", SLOW)
@given(data=st.data(), seed=seeds)
@settings(max_examples=examples(1))
def test_from_sympy_gradient_matches_finite_differences(name, data, seed):
    rng = np.random.default_rng(seed)
    out, wrt, feeds = CASES[name](data, rng)
    check_gradients(out, wrt, feeds, seed=seed)


def test_losses_values_match_their_definitions():
    """The gradients above are of the right functions: each loss against its NumPy formula."""
    rng = np.random.default_rng(3)
    s = normal(rng, (4, 3))
    y = labels_for(rng, 4, 3)
    t = rng.uniform(0, 1, (4, 3))
    scores, labels = gc.input("s", (4, 3)), gc.input("y", (4,), dtype="int64")
    targets = gc.input("t", (4, 3))
    w = gc.param("w", (2, 2), init=[[1.0, -2.0], [3.0, 0.5]])
    outs = [gc.softmax_cross_entropy(scores, labels), gc.sigmoid_cross_entropy(scores, targets),
            gc.mse(scores, targets), gc.l1(scores, targets), gc.hinge(scores, labels),
            gc.l2_penalty([w], 0.1), gc.accuracy(scores, labels)]
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    rows = np.arange(4)
    sig = 1 / (1 + np.exp(-s))
    margins = np.maximum(0, s - s[rows, y][:, None] + 1)
    margins[rows, y] = 0
    expected = [-np.log(p[rows, y]).mean(),
                -(t * np.log(sig) + (1 - t) * np.log(1 - sig)).mean(),
                ((s - t) ** 2).mean(), np.abs(s - t).mean(), margins.sum(axis=1).mean(),
                0.05 * (1 + 4 + 9 + 0.25), (s.argmax(axis=1) == y).mean()]
    feeds = {scores: s, labels: y, targets: t}
    for got in [gc.evaluate(outs, feeds), run(gc.compile(outs, [scores, labels, targets]), feeds)]:
        for value, want in zip(got, expected):
            np.testing.assert_allclose(value, want, rtol=1e-12)


# --- whole networks -------------------------------------------------------------------------------
def mlp(rng, dtype="float64", activations=(gc.relu, gc.tanh), sizes=(4, 6, 5, 3)):
    """x -> act1(x W1 + b1) -> act2(. W2 + b2) -> . W3 + b3, softmax cross-entropy."""
    x = gc.input("x", ("batch", sizes[0]), dtype=dtype)
    labels = gc.input("labels", ("batch",), dtype="int64")
    params, h = [], x
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes), start=1):
        w = gc.param(f"W{i}", (n_in, n_out), init=normal(rng, (n_in, n_out)), dtype=dtype)
        b = gc.param(f"b{i}", (n_out,), init=normal(rng, n_out, 0.5), dtype=dtype)
        params += [w, b]
        h = h @ w + b
        if i < len(sizes) - 1:
            h = activations[i - 1](h)
    loss = gc.softmax_cross_entropy(h, labels)
    return x, labels, params, loss


def test_mlp_gradient_of_every_parameter():
    rng = np.random.default_rng(0)
    x, labels, params, loss = mlp(rng)
    feeds = {x: normal(rng, (5, 4)), labels: labels_for(rng, 5, 3)}
    # the relu's inputs stay away from its kink, so finite differences are exact enough
    assert np.abs(feeds[x] @ params[0].value + params[1].value).min() > 1e-3
    numeric = check_gradients(loss, params, feeds, levels=(0, 1, 2))
    assert all(np.abs(g).max() > 1e-3 for g in numeric), "a parameter with no gradient"


def test_mlp_gradient_with_respect_to_the_input_too():
    rng = np.random.default_rng(1)
    x, labels, params, loss = mlp(rng, activations=(gc.sigmoid, gc.elu))
    feeds = {x: normal(rng, (5, 4)), labels: labels_for(rng, 5, 3)}
    check_gradients(loss + gc.l2_penalty(params[::2], 0.01), [x, *params], feeds)


def _d2_tanh_x3(x):
    t = np.tanh(x)
    sech2 = 1 - t**2
    return -2 * x**3 * sech2 * t + 6 * x**2 * sech2 + 6 * x * t


def test_second_derivative_of_tanh_times_cube():
    x = gc.input("x", (7,))
    f = gc.sum(gc.tanh(x) * x**3)
    (d1,) = gc.grad(f, [x])
    (d2,) = gc.grad(gc.sum(d1), [x])  # elementwise f, so this is f'' at each entry
    value = np.linspace(-2, 2, 7)
    t = np.tanh(value)
    first = (1 - t**2) * value**3 + 3 * value**2 * t
    second = _d2_tanh_x3(value)
    np.testing.assert_allclose(gc.evaluate([d1, d2], {x: value})[1], second, rtol=1e-12,
                               atol=1e-12)
    for level in (0, 1, 2):
        got1, got2 = gc.compile([d1, d2], [x], optimize=level)(x=value)
        np.testing.assert_allclose(got1, first, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got2, second, rtol=1e-12, atol=1e-12)
    # and the gradient graph d1 differentiated again matches finite differences of d1
    check_gradients(d1, [x], {x: value})


def test_third_derivative_is_a_graph_too():
    x = gc.scalar("x")
    (d1,) = gc.grad(gc.tanh(x) * x**3, [x])
    (d2,) = gc.grad(d1, [x])
    (d3,) = gc.grad(d2, [x])
    value = np.array(0.7)
    eps = 1e-5
    expected = (_d2_tanh_x3(value + eps) - _d2_tanh_x3(value - eps)) / (2 * eps)
    np.testing.assert_allclose(gc.compile([d3], [x])(x=value)[0], expected, rtol=1e-7)
    np.testing.assert_allclose(gc.evaluate([d3], {x: value})[0], expected, rtol=1e-7)


def test_gradient_of_a_gradient_through_matmul():
    rng = np.random.default_rng(2)
    x = gc.input("x", (3, 4))
    w = gc.param("w", (4, 2), init=normal(rng, (4, 2)))
    y = gc.sum(gc.tanh(x @ w) ** 2)
    (dw,) = gc.grad(y, [w])
    # the squared norm of dL/dW as a function of x and W: differentiating it goes back
    # through the backward pass, matmuls and transposes included
    check_gradients(gc.sum(dw * dw), [x, w], {x: normal(rng, (3, 4))}, levels=(0, 1, 2))


def test_gradient_of_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(4)
    scores = gc.input("scores", (3, 4))
    labels = gc.input("labels", (3,), dtype="int64")
    (ds,) = gc.grad(gc.softmax_cross_entropy(scores, labels), [scores])
    feeds = {scores: normal(rng, (3, 4)), labels: np.array([0, 3, 1])}
    check_gradients(ds, [scores], feeds)


def test_finite_difference_helper_is_itself_right():
    array = np.array([[1.0, 2.0], [3.0, -1.0]])
    got = numeric_gradient(lambda: float(np.sum(array**3)), array)
    np.testing.assert_allclose(got, 3 * array**2, rtol=1e-8)


def test_second_derivatives_through_kinks():
    """abs, maximum, minimum and relu differentiate twice: the Dirac delta of a kink is zero
    almost everywhere (here f'' of |x| x is 2 sign(x), of max(x, y) x is 2 [x > y])."""
    x, y = gc.input("x", (4,)), gc.input("y", (4,))
    fs = [gc.abs(x) * x, gc.maximum(x, y) * x, gc.minimum(x, y) * x, gc.relu(x) * x,
          gc.leaky_relu(x, 0.1) * x]
    xv, yv = np.array([-1.5, -0.5, 0.5, 2.0]), np.array([0.0, -1.0, 1.0, 1.0])
    above = (xv > yv).astype(float)
    expected = [2 * np.sign(xv), 2 * above, 2 * (1 - above), 2 * (xv > 0),
                np.where(xv > 0, 2.0, 0.2)]
    for f, want in zip(fs, expected):
        (d1,) = gc.grad(gc.sum(f), [x])
        (d2,) = gc.grad(gc.sum(d1), [x])
        feeds = {x: xv, y: yv}
        np.testing.assert_allclose(gc.evaluate([d2], feeds)[0], want, err_msg=f.label)
        for level in (0, 2):
            prog = gc.compile([d2], [x, y], optimize=level)
            np.testing.assert_allclose(run(prog, feeds)[0], want, err_msg=f.label)
