"""Differential tests against oracles that share no code with graphc.

Random graphs (tests/oracles.py) are built in graphc and, independently, in HIPS autograd
(every op written from its math definition in ``autograd.numpy``) and, for the scalar ops it
has, in micrograd. graphc must give the oracles' values, first derivatives and (for scalar
graphs) second derivatives, with the declared dtype and shape, through the reference
interpreter and through ``gc.compile`` at every optimize level. Tensor graphs have a
symbolic batch dimension, and their one compiled program is called at batch sizes 3, 5 and
3 again, in turn (buffers allocated for one size must not leak into the next).

No finite differences: both sides compute exact derivatives at the same point, and the
generator keeps every operand away from kinks and poles, so the only difference allowed is
float64 rounding: ``RTOL`` relative, ``ATOL`` absolute on the scale of the output.

Profiles: ``GRAPHC_ORACLE_GRAPHS=<n>`` graphs per category (default: a few dozen, the file
runs in about a minute on two cores); the nightly profile
(``GRAPHC_HYPOTHESIS_PROFILE=nightly``) runs 10,000 per category.
``GRAPHC_ORACLE_SEEDS=17,42`` runs only those seeds (a failure names its seed and prints its
graph). The number of graphs checked against each oracle is printed at the end of the run.

Each bug the oracles found has a regression test of its own at the end of this file.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from oracles import (
    ELEMENTWISE,
    MICROGRAD_OPS,
    Graph,
    build_graphc,
    describe,
    run_micrograd,
    run_oracle,
    scalar_graph,
    tensor_graph,
)

import graphc as gc

#: graphc against an oracle, both in float64: rounding differs (passes reorder and rewrite
#: the math, autograd has its own derivative formulas), over graphs of at most ~20 ops whose
#: values are bounded by 1e3 and never near a pole, so errors stay far below these.
RTOL, ATOL = 1e-8, 1e-10
LEVELS = (0, 1, 2, 3)


NIGHTLY = os.environ.get("GRAPHC_HYPOTHESIS_PROFILE") == "nightly"
#: Graphs per category by default (the nightly profile runs 10,000 each).
DEFAULT_GRAPHS = {"micrograd": 40, "scalar": 80, "tensor": 60, "conv": 30}


def seeds(category: str) -> list[int]:
    """The seeds a category runs: GRAPHC_ORACLE_SEEDS if given, else 0 .. n-1."""
    chosen = os.environ.get("GRAPHC_ORACLE_SEEDS")
    if chosen:
        return [int(s) for s in chosen.split(",")]
    n = os.environ.get("GRAPHC_ORACLE_GRAPHS")
    return list(range(int(n) if n else 10_000 if NIGHTLY else DEFAULT_GRAPHS[category]))


#: (category, oracle) -> graphs checked; printed at the end of the module.
COUNTS: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    """Print how many graphs of each category were checked against each oracle."""
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    if reporter is not None and COUNTS:
        with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
            reporter.write_line("")
            for (category, oracle), n in sorted(COUNTS.items()):
                reporter.write_line(f"oracle graphs: {n} {category} graphs against {oracle}")


# --- comparing ---------------------------------------------------------------------------------
def concrete(shape, batch: int) -> tuple[int, ...]:
    return tuple(batch if d == "batch" else d for d in shape)


def check_outputs(got, want, nodes, labels, batch: int, where: str) -> None:
    """Each returned array has its node's declared dtype and shape (at this batch size) and
    the oracle's value; the oracle's dtype is the node's."""
    assert len(got) == len(nodes), f"{where}: {len(got)} outputs for {len(nodes)} nodes"
    for g, w, node, label in zip(got, want, nodes, labels):
        what = f"{where}, {label} ({node!r})"
        w = np.asarray(w)
        assert node.dtype == w.dtype, f"{what}: declared dtype {node.dtype}, oracle {w.dtype}"
        assert isinstance(g, (np.ndarray, np.generic)), f"{what}: returned a {type(g).__name__}"
        assert g.dtype == node.dtype, f"{what}: dtype {g.dtype}, declared {node.dtype}"
        assert g.shape == concrete(node.shape, batch), f"{what}: shape {g.shape}, declared " \
            f"{node.shape} at batch {batch}"
        scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL * scale, err_msg=what)


def failure(graph: Graph, where: str, error: BaseException) -> str:
    return (f"{where}: {type(error).__name__}: {error}\n{describe(graph)}\nreproduce: "
            f"GRAPHC_ORACLE_SEEDS={graph.seed} .venv/bin/python -m pytest "
            f"tests/test_oracles.py -k {graph.category}")


def programs(nodes, inputs):
    """The reference interpreter, then a program compiled at each optimize level, each as a
    (name, function of a feed dict by name) pair."""
    yield "gc.evaluate", lambda feeds: gc.evaluate(nodes, {x: feeds[x.name] for x in inputs})
    for level in LEVELS:
        yield f"optimize={level}", gc.compile(nodes, inputs, optimize=level)


def check_against(graph: Graph, nodes, labels, inputs, wants: dict[str, list]) -> None:
    """Run every program on each call's feeds in turn and compare with each oracle's
    outputs (``wants[oracle][call]``, a prefix of the nodes' outputs for micrograd)."""
    try:
        progs = list(programs(nodes, inputs))
    except Exception as error:
        raise AssertionError(failure(graph, "compiling", error)) from error
    for name, prog in progs:
        for call, (batch, feeds) in enumerate(zip(graph.batches, graph.feeds)):
            where = f"{name}, call {call} (batch {batch})"
            try:
                got = prog(**{x.name: feeds[x.name] for x in inputs}) if name != "gc.evaluate" \
                    else prog(feeds)
                for oracle, want in wants.items():
                    n = len(want[call])
                    check_outputs(got[:n], want[call], nodes[:n], labels[:n], batch,
                                  f"{where} vs {oracle}")
            except Exception as error:
                raise AssertionError(failure(graph, where, error)) from error


# --- scalar graphs: values, gradients and Hessians -----------------------------------------------
def check_scalar_graph(graph: Graph, with_micrograd: bool) -> None:
    """y, its gradient and its Hessian with respect to the inputs, against autograd (grad and
    hessian) and, where asked, micrograd (value and gradient)."""
    built = build_graphc(graph)
    wrt = graph.wrt
    xs = [built[i] for i in wrt]
    names = [graph.steps[i].kw["name"] for i in wrt]
    y = built[-1]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "grad: the output does not depend")
        grads = gc.grad(y, xs)
        hessian = [h for g in grads for h in gc.grad(g, xs)]
    nodes = [y, *grads, *hessian]
    labels = ["y", *[f"dy/d{a}" for a in names],
              *[f"d2y/d{a}d{b}" for a in names for b in names]]
    feeds = graph.feeds[0]
    point = np.array([feeds[a] for a in names])

    def f(v):
        return run_oracle(graph, feeds, {i: v[k] for k, i in enumerate(wrt)})[-1]

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Output seems independent of input")
        want = [f(point), *autograd.grad(f)(point), *autograd.hessian(f)(point).ravel()]
    wants = {"autograd": [[np.float64(w) for w in want]]}
    if with_micrograd:
        out, values = run_micrograd(graph, feeds)
        out.backward()
        wants["micrograd"] = [[np.float64(out.data),
                               *[np.float64(values[a].grad) for a in names]]]
    check_against(graph, nodes, labels, [built[i] for i in graph.leaves("input")], wants)
    COUNTS.update((graph.category, oracle) for oracle in wants)


def test_micrograd_scalar_graphs():
    """+ - * / ** relu DAGs: micrograd's value and gradient, autograd's Hessian."""
    for seed in seeds("micrograd"):
        check_scalar_graph(scalar_graph(seed, list(MICROGRAD_OPS), "micrograd"), True)


def test_scalar_graphs_of_every_elementwise_op():
    """DAGs over every elementwise op, with constants and shared subexpressions: value,
    gradient and Hessian against autograd."""
    for seed in seeds("scalar"):
        check_scalar_graph(scalar_graph(seed, list(ELEMENTWISE), "scalar"), False)


# --- tensor graphs: values and gradients at several batch sizes ------------------------------
def check_tensor_graph(graph: Graph) -> None:
    """y, every terminal and the gradients of y with respect to the float inputs and the
    parameters, at each call's batch size, against autograd."""
    built = build_graphc(graph)
    wrt = graph.wrt
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "grad: the output does not depend")
        grads = gc.grad(built[-1], [built[i] for i in wrt])
    nodes = [built[-1], *[built[t] for t in graph.terminals], *grads]
    labels = ["y", *[f"v{t}" for t in graph.terminals],
              *[f"dy/d{graph.steps[i].kw['name']}" for i in wrt]]
    wants = []
    for feeds in graph.feeds:
        vals = run_oracle(graph, feeds)

        def f(leaves, feeds=feeds):
            return run_oracle(graph, feeds, dict(zip(wrt, leaves)))[-1]

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Output seems independent of input")
            g = autograd.grad(f)([vals[i] for i in wrt])
        wants.append([vals[-1], *[vals[t] for t in graph.terminals], *g])
    check_against(graph, nodes, labels, [built[i] for i in graph.leaves("input")],
                  {"autograd": wants})
    COUNTS[graph.category, "autograd"] += 1


def test_tensor_graphs():
    """Broadcasting, keepdims reductions, batched matmul, transpose, reshape, concatenate,
    softmax/log_softmax/logsumexp, every loss and the L2 penalty, with a batch dimension."""
    for seed in seeds("tensor"):
        check_tensor_graph(tensor_graph(seed, list(ELEMENTWISE), "tensor"))


def test_conv_graphs():
    """conv2d (stride, padding, bias) and max/avg pooling of NCHW images, then the rest."""
    for seed in seeds("conv"):
        check_tensor_graph(tensor_graph(seed, list(ELEMENTWISE), "conv"))


def test_the_oracles_agree_with_each_other():
    """micrograd and autograd, on one graph by hand: the oracles themselves are right."""
    from micrograd.engine import Value

    a, b = Value(1.5), Value(-0.5)
    y = ((a * b + a) ** 2 / (b - 2.0)).relu() + (a - b * 3.0).relu()
    y.backward()

    def f(v):
        p, q = v[0], v[1]
        return anp.maximum((p * q + p) ** 2 / (q - 2.0), 0.0) + anp.maximum(p - q * 3.0, 0.0)

    np.testing.assert_allclose(y.data, f(np.array([1.5, -0.5])), rtol=1e-15)
    np.testing.assert_allclose([a.grad, b.grad], autograd.grad(f)(np.array([1.5, -0.5])),
                               rtol=1e-15)
    assert a.grad == 1.0 and b.grad == -3.0  # relu((..)/(-2.5)) is 0: only the second term


# --- regressions: minimal repros of the bugs the random graphs found (issue 10) -------------------
def at_every_level(outputs, feeds: dict) -> dict[str, list]:
    """The outputs through the interpreter and compiled at each optimize level, by name."""
    inputs = list(feeds)
    got = {"gc.evaluate": gc.evaluate(outputs, feeds)}
    for level in LEVELS:
        prog = gc.compile(outputs, inputs, optimize=level)
        got[f"optimize={level}"] = prog(**{x.name: v for x, v in feeds.items()})
    return got


def assert_every_level(outputs, feeds: dict, want: list) -> None:
    for where, got in at_every_level(outputs, feeds).items():
        for g, w in zip(got, want):
            assert np.asarray(g).dtype == np.float64, f"{where}: dtype {np.asarray(g).dtype}"
            np.testing.assert_allclose(g, w, rtol=RTOL, err_msg=where)


@pytest.mark.parametrize("make, want", [
    (lambda x: gc.relu(x), 1.0),  # d relu(x) is True, of dtype bool
    (lambda x: -gc.relu(x), -1.0),  # -mask: NumPy refuses to negate a boolean
    (lambda x: gc.relu(gc.relu(x) + x), 2.0),  # mask + mask is True, not 2
], ids=["relu", "-relu", "relu(relu(x)+x)"])
def test_relu_gradients(make, want):
    x = gc.scalar("x")
    assert_every_level(gc.grad(make(x), [x]), {x: np.array(1.5)}, [want])


def test_elu_second_derivative():
    x = gc.scalar("x")
    (g,) = gc.grad(gc.elu(x, 0.5), [x])
    assert_every_level(gc.grad(g, [x]), {x: np.array(-0.5)}, [0.5 * np.exp(-0.5)])


def test_nested_powers_in_a_gradient():
    """d/dx exp(softplus(x) ** 0.05): the derivative of the power is printed as
    ``p**20.0**0.95`` (p to the 17.3), not ``(p**20.0)**0.95``; 0.0864 instead of 0.0866."""
    x = gc.scalar("x")
    y = gc.exp(gc.softplus(x) ** 0.05)

    def f(v):
        return anp.exp(anp.log1p(anp.exp(v)) ** 0.05)

    assert_every_level(gc.grad(y, [x]), {x: np.array(0.5)}, [autograd.grad(f)(0.5)])


def test_leaky_relu_of_an_expression():
    """leaky_relu(x - z, 0.1) at x - z = -1: -0.1; optimize=2 prints x - z*0.1... (-2.35)."""
    x, z = gc.scalar("x"), gc.scalar("z")
    assert_every_level([gc.leaky_relu(x - z, 0.1)], {x: np.array(1.5), z: np.array(2.5)},
                       [-0.1])


def test_a_quotient_of_equal_subexpressions_keeps_its_shape():
    v = gc.input("v", (3,))
    assert_every_level([gc.exp(v) / gc.exp(v)], {v: np.array([0.5, -1.0, 2.0])},
                       [np.ones(3)])


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")
def test_exp_of_a_log_is_nan_for_a_negative_number():
    x = gc.scalar("x")
    for where, (got,) in at_every_level([gc.exp(gc.log(x) * 2)], {x: np.array(-1.5)}).items():
        assert np.isnan(got), f"{where}: {got}, log(-1.5) is NaN"


@pytest.mark.parametrize("op, want", [(gc.elu, np.expm1(-1.0)), (gc.leaky_relu, -0.01)],
                         ids=["elu", "leaky_relu"])
def test_activations_of_a_constant(op, want):
    x = gc.scalar("x")
    assert_every_level([op(gc.constant(-1.0)) + x], {x: np.array(1.5)}, [want + 1.5])
