"""The generated code against the reference interpreter: Hypothesis draws random graphs
(elementwise chains with broadcasting, reductions, matmuls, network outputs, losses) and random
inputs, and every optimize level (and other pass lists) must give the interpreter's numbers,
gradients included, to 1e-10 relative in float64."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp
from helpers import CODEGEN_RTOL, assert_close, examples, labels_for, run
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ir.graph import topological_order
from graphc.passes.pipeline import LEVELS, PASSES

_z = sp.Symbol("z")

UNARY = {
    "tanh": gc.tanh,
    "sigmoid": gc.sigmoid,
    "relu": gc.relu,
    "softplus": gc.softplus,
    "abs": gc.abs,
    "neg": lambda x: -x,
    "elu": gc.elu,
    "leaky_relu": lambda x: gc.leaky_relu(x, 0.1),
    "square": gc.square,
    "gauss": lambda x: gc.exp(-x * x),
    "log1p_sq": lambda x: gc.log(1 + x * x),
    "sqrt1p_sq": lambda x: gc.sqrt(1 + x * x),
    "affine": lambda x: 2 * x - 0.5,
    "softsign": lambda x: gc.from_sympy(_z / (1 + sp.Abs(_z)), {_z: x}),
}

BINARY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*tanh": lambda a, b: a * gc.tanh(b),
    "/": lambda a, b: a / (1 + b * b),
    "maximum": gc.maximum,
    "minimum": gc.minimum,
    "where": lambda a, b: gc.where(a > b, a, 0.5 * b),
    "pow": lambda a, b: (1 + a * a) ** gc.tanh(b),
}


@dataclass
class Case:
    outputs: list
    inputs: list
    feeds: dict
    description: list


@st.composite
def random_graphs(draw) -> Case:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    batch, n, m = draw(st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)))
    named = draw(st.booleans())
    b = "batch" if named else batch
    x = gc.input("x", (b, n))
    extra = draw(st.lists(st.sampled_from([(n,), (1, n), (b, 1), (), (b, n)]), max_size=2))
    inputs = [x] + [gc.input(f"u{i}", s) for i, s in enumerate(extra)]
    W = gc.param("W", (n, m), init=rng.standard_normal((n, m)))
    V = gc.param("V", (m, n), init=rng.standard_normal((m, n)))
    c = gc.param("c", (m,), init=rng.standard_normal(m))
    pool = list(inputs)
    log = []
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "reduce", "matmul", "output",
                                     "tensor"]))
        a = draw(st.sampled_from(pool))
        if kind == "unary":
            name = draw(st.sampled_from(sorted(UNARY)))
            node = UNARY[name](a)
        elif kind == "binary":
            name = draw(st.sampled_from(sorted(BINARY)))
            other = draw(st.sampled_from(pool))
            try:
                node = BINARY[name](a, other)
            except gc.ShapeError:
                continue
        elif kind == "reduce":
            name = draw(st.sampled_from(["sum", "mean", "max"]))
            axis = draw(st.one_of(st.none(), st.integers(-a.ndim, a.ndim - 1))) if a.ndim \
                else None
            keepdims = draw(st.booleans())
            node = getattr(gc, name)(a, axis=axis, keepdims=keepdims)
            name = f"{name}(axis={axis}, keepdims={keepdims})"
        elif kind == "matmul":
            if a.ndim != 2 or a.shape[1] not in (n, m):
                continue
            name = "@W+c" if a.shape[1] == n else "@V"
            node = a @ W + c if a.shape[1] == n else a @ V
        elif kind == "output":
            if a.ndim == 0:
                continue
            name = draw(st.sampled_from(["softmax", "log_softmax", "logsumexp"]))
            axis = draw(st.integers(-a.ndim, a.ndim - 1))
            node = getattr(gc, name)(a, axis=axis)
        else:
            if a.ndim != 2:
                continue
            name = draw(st.sampled_from(["T", "concatenate", "flatten3"]))
            if name == "T":
                node = a.T
            elif name == "concatenate":
                if not isinstance(a.shape[1], int):
                    continue  # (concatenating along a named dimension is not supported)
                node = gc.concatenate([a, gc.tanh(a)], axis=1)
            else:
                if not isinstance(a.shape[1], int):
                    continue  # (-1 cannot stand for a named dimension)
                node = gc.reshape(a, (a.shape[0], 1, -1))
        log.append(f"{name}({a!r})")
        pool.append(node)
    # a scalar objective reading the newest nodes, and a loss where scores are there
    tail = pool[-draw(st.integers(1, min(3, len(pool)))):]
    y = gc.sum(tail[0])
    for t in tail[1:]:
        y = y + gc.mean(t)
    labels = gc.input("labels", (b,), dtype="int64")
    scores = [p for p in pool if p.shape == (b, m)]
    if scores:
        loss = draw(st.sampled_from([gc.softmax_cross_entropy, gc.hinge]))
        y = y + loss(draw(st.sampled_from(scores)), labels)
        inputs.append(labels)
        log.append(f"{loss.__name__}")
    reads = {node.id for node in topological_order([y])}
    wrt = [p for p in inputs + [W, V, c] if p.id in reads and p.dtype.kind == "f"]
    grads = gc.grad(y, wrt) if wrt else []
    shown = draw(st.lists(st.sampled_from(pool), max_size=3, unique_by=lambda p: p.id))
    outputs = [y, *shown, *grads]
    used = {node.id for node in topological_order(outputs)}
    inputs = [i for i in inputs if i.id in used]
    feeds = {}
    for i in inputs:
        shape = tuple(batch if d == "batch" else d for d in i.shape)
        feeds[i] = labels_for(rng, batch, m) if i is labels else rng.standard_normal(shape) * 2
    return Case(outputs, inputs, feeds, log)


#: Every optimize level, every pass on its own, memory planning on its own and after a
#: level that does not plan, and the whole pipeline backwards and twice, planned.
PASS_LISTS = [dict(optimize=level) for level in sorted(LEVELS)] + \
    [dict(passes=[name]) for name in PASSES] + \
    [dict(passes=[], memory=True), dict(optimize=1, memory=True)] + \
    [dict(passes=list(reversed(PASSES)), memory=True),
     dict(passes=list(PASSES) * 2, memory=True)]


@given(case=random_graphs())
@settings(max_examples=examples(40))
def test_generated_code_matches_the_interpreter(case):
    expected = gc.evaluate(case.outputs, case.feeds)
    sizes = {d: v.shape[i] for n, v in case.feeds.items() for i, d in enumerate(n.shape)
             if isinstance(d, str)}
    for node, value in zip(case.outputs, expected):  # the oracle keeps the declared types
        assert value.dtype == node.dtype, node
        assert value.shape == tuple(sizes.get(d, d) for d in node.shape), node
    for options in PASS_LISTS:
        prog = gc.compile(case.outputs, case.inputs, **options)
        got = run(prog, case.feeds)
        assert len(got) == len(expected)
        for i, (g, e) in enumerate(zip(got, expected)):
            what = f"{options} output {i} of {case.description}"
            assert np.asarray(g).dtype == e.dtype, what
            assert_close(g, e, rtol=CODEGEN_RTOL, atol=1e-12, what=what)


@given(case=random_graphs())
@settings(max_examples=examples(10))
def test_programs_are_pure_functions_of_their_feeds(case):
    """Calling a (forward and backward) program twice gives the same numbers; it never writes
    into the arrays it was fed, nor into the arrays an earlier call returned."""
    prog = gc.compile(case.outputs, case.inputs)
    feeds = {n.name: v.copy() for n, v in case.feeds.items()}
    first = prog(**feeds)
    kept = [np.array(a, copy=True) for a in first]
    second = prog(**feeds)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for n, v in case.feeds.items():
        np.testing.assert_array_equal(feeds[n.name], v)
    other = {k: (v if v.dtype.kind in "iu" else v * 0.5 + 1) for k, v in feeds.items()}
    prog(**other)
    for a, b in zip(first, kept):
        np.testing.assert_array_equal(a, b, err_msg="a later call overwrote an earlier result")


def test_random_graphs_cover_the_ops():
    """The strategy above is not vacuous: across a fixed sample it builds every kind of op."""
    seen = set()

    @given(case=random_graphs())
    @settings(max_examples=150, database=None, derandomize=True)
    def collect(case):
        for node in topological_order(case.outputs):
            seen.add(node.op.name)

    collect()
    assert {"elementwise", "sum", "mean", "max", "matmul", "softmax", "log_softmax",
            "logsumexp", "transpose", "concatenate", "reshape", "softmax_cross_entropy",
            "take", "expand", "scatter"} <= seen
