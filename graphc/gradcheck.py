"""Gradient checking: the gradients ``gc.grad`` derives against central finite differences.

``check_grads`` is graphc's counterpart of ``jax.test_util.check_grads``,
``torch.autograd.gradcheck`` and PyTensor's ``verify_grad``. Both sides are computed with the
reference interpreter (``gc.evaluate``), so the check tests the derivation of the gradient
graph (each op's vector-Jacobian product, SymPy's derivatives of elementwise ops), not the
code generator.
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from graphc.errors import FeedError, GradientCheckError
from graphc.feeds import Feeds, leaf_name
from graphc.interpreter import evaluate
from graphc.ir.graph import topological_order
from graphc.ir.node import Node
from graphc.ops.api import sum as reduce_sum
from graphc.ops.leaves import input as input_node
from graphc.passes.autodiff import grad

#: Default (eps, rtol, atol) by derivative order and by whether everything is float64. The
#: order-2 check differences a gradient graph, which is less smooth than the function and
#: often larger, so its step and tolerances are larger; float32 has ~7 digits, so the step
#: must be large enough that rounding (~1e-7 / eps) stays below the tolerance.
_DEFAULTS: dict[tuple[int, bool], tuple[float, float, float]] = {
    (1, True): (1e-6, 1e-5, 1e-6),
    (2, True): (1e-5, 1e-4, 1e-5),
    (1, False): (1e-3, 1e-2, 1e-3),
    (2, False): (1e-2, 5e-2, 1e-2),
}
#: The projections' weights come from this seed, so a check gives the same verdict each run.
_SEED = 0
_FEEDABLE = ("input", "param", "state")
_DOES_NOT_DEPEND = "grad: the output does not depend on"


def check_grads(outputs: Node | Sequence[Node], wrt: Node | Sequence[Node],
                feeds: Feeds, order: int = 1, eps: float | None = None,
                rtol: float | None = None, atol: float | None = None) -> None:
    """Check ``gc.grad`` of each output with respect to ``wrt`` against central differences.

    ``outputs`` is a node or a list of nodes; ``wrt`` the inputs and parameters (``gc.param``)
    to differentiate by, each of a floating dtype; ``feeds`` the values of the inputs, as for
    ``gc.evaluate`` (keyed by input node; names work too). Each entry of each ``wrt`` value is
    moved by +-eps in turn, and ``(f(x + eps) - f(x - eps)) / 2 eps`` must agree with the
    derived gradient within ``atol + rtol * |finite difference|``.

    A non-scalar output ``y`` is checked through a random projection, as ``verify_grad``
    does: the scalar ``sum(y * w)`` with fixed random weights ``w`` of magnitude 0.5 to 1.5
    and random sign (never near zero, so no wrong entry hides behind a small weight). Its
    gradient is the vector-Jacobian product with ``w``, which exercises every entry of the
    Jacobian. ``order=2`` also checks the second derivatives: the gradient of a random
    projection of the gradient against finite differences of that projected gradient.

    Parameters are perturbed through a copy of their value that stands in for it during the
    check; the original array is put back afterwards, even when the check fails, and neither
    it nor any fed array is ever written to. Defaults: for float64 eps 1e-6, rtol 1e-5, atol
    1e-6 (order 2: 1e-5, 1e-4, 1e-5); where any output or ``wrt`` is float32, eps 1e-3, rtol
    1e-2, atol 1e-3 (order 2: 1e-2, 5e-2, 1e-2). Given values apply to both orders.

    Raises GradientCheckError naming the output, the input, the entry where the two disagree
    most, both numbers and the tolerance; so it fails, as it must, where a function has a
    kink (relu at 0: the finite difference is 0.5, the derivative 0 or 1).
    """
    outs = [outputs] if isinstance(outputs, Node) else list(outputs)
    targets = [wrt] if isinstance(wrt, Node) else list(wrt)
    _check_arguments(outs, targets, order, eps)
    f64 = all(n.dtype == np.float64 for n in outs + targets)
    tolerances = [_tolerances(_DEFAULTS[(k, f64)], eps, rtol, atol) for k in (1, 2)]
    given = _by_node(feeds, outs)
    rng = np.random.default_rng(_SEED)
    work: dict[Node, np.ndarray] = {}
    saved: dict[Node, np.ndarray] = {}
    try:
        for x in targets:
            work[x] = _working_copy(x, given)
            given[x] = work[x]
            if x.op.name == "param":
                saved[x], x.value = x.array, work[x]
        for k, out in enumerate(outs):
            what = _describe_output(out, k, len(outs))
            value = evaluate([out], _restrict(given, [out]))[0]
            scalar = _project([out], [np.shape(value)], rng, given)
            first = grad(scalar, targets)
            _compare(scalar, first, targets, work, given, tolerances[0],
                     f"the gradient of {what}")
            if order == 2:
                second_out = _project(first, [work[x].shape for x in targets], rng, given)
                with warnings.catch_warnings():  # a zero second derivative is no news here
                    warnings.filterwarnings("ignore", message=_DOES_NOT_DEPEND)
                    second = grad(second_out, targets)
                _compare(second_out, second, targets, work, given, tolerances[1],
                         f"the second derivative (gradient of a random projection of the "
                         f"gradient) of {what}")
    finally:
        for x, value in saved.items():
            x.value = value


def _check_arguments(outs: list[Node], targets: list[Node], order: int,
                     eps: float | None) -> None:
    if order not in (1, 2):
        raise ValueError(f"check_grads: order must be 1 or 2, got {order!r}")
    if eps is not None and not eps > 0:
        raise ValueError(f"check_grads: eps must be positive, got {eps!r}")
    if not outs or not targets:
        raise ValueError("check_grads: needs at least one output and one node in wrt")
    for x in targets:
        if x.op.name not in ("input", "param"):
            raise ValueError(f"check_grads: wrt holds {x!r} (op {x.op.name}); only inputs "
                             "and parameters can be moved to take finite differences")
    for n in outs + targets:
        if n.dtype.kind != "f":
            raise ValueError(f"check_grads: {n!r} is {n.dtype}; only floating outputs and "
                             "inputs have gradients")


def _tolerances(defaults: tuple[float, float, float], eps: float | None, rtol: float | None,
                atol: float | None) -> tuple[float, float, float]:
    given = (eps, rtol, atol)
    eps, rtol, atol = (d if g is None else float(g) for d, g in zip(defaults, given))
    return eps, rtol, atol


def _by_node(feeds: Feeds, outs: list[Node]) -> dict[Node, Any]:
    """``feeds`` keyed by node: a name stands for the one input or parameter of that name
    the outputs depend on."""
    by_name: dict[str, list[Node]] = {}
    for n in topological_order(outs):
        if n.op.name in _FEEDABLE:
            by_name.setdefault(leaf_name(n), []).append(n)
    resolved: dict[Node, Any] = {}
    for key, value in feeds.items():
        if isinstance(key, Node):
            resolved[key] = value
            continue
        found = by_name.get(key, [])
        if len(found) != 1:
            how = "no" if not found else f"{len(found)}"
            raise FeedError(f"check_grads: the feed {key!r} names {how} inputs or parameters "
                            "of the outputs; key it by node")
        resolved[found[0]] = value
    return resolved


def _working_copy(x: Node, given: Mapping[Node, Any]) -> np.ndarray:
    """A fresh array holding the value of ``x`` the check starts from: its fed value, or a
    parameter's stored value."""
    if x in given:
        return np.array(given[x], dtype=x.dtype, copy=True)
    if x.op.name == "input":
        raise FeedError(f"check_grads: no value fed for input {x.name!r}")
    return np.array(x.value, dtype=x.dtype, copy=True)


def _restrict(given: Mapping[Node, Any], outputs: list[Node]) -> dict[Node, Any]:
    """The feeds ``outputs`` depend on (``gc.evaluate`` may refuse others)."""
    needed = {n.id for n in topological_order(outputs)}
    return {n: v for n, v in given.items() if n.id in needed}


def _project(nodes: list[Node], shapes: list[tuple[int, ...]], rng: np.random.Generator,
             given: dict[Node, Any]) -> Node:
    """The scalar sum_i sum(nodes[i] * w_i), with random weights w_i (of the values' concrete
    ``shapes``) fed to new inputs of each node's declared shape, so that named dimensions bind
    as they do for the node; a scalar node alone is returned as it is."""
    if len(nodes) == 1 and nodes[0].shape == ():
        return nodes[0]

    def term(node: Node, shape: tuple[int, ...]) -> Node:
        w = input_node("check_grads_w", node.shape, dtype=node.dtype)
        magnitude = rng.uniform(0.5, 1.5, shape)
        given[w] = (magnitude * rng.choice([-1.0, 1.0], shape)).astype(node.dtype)
        return reduce_sum(node * w)

    # each term added as it is made, in order, as a loop would
    return functools.reduce(operator.add, (term(n, s) for n, s in zip(nodes, shapes)))


def _compare(scalar: Node, gradients: list[Node], targets: list[Node],
             work: Mapping[Node, np.ndarray], given: Mapping[Node, Any],
             tolerances: tuple[float, float, float], what: str) -> None:
    """Raise GradientCheckError where ``gradients`` of ``scalar`` (evaluated at ``work``)
    and central differences of ``scalar`` disagree beyond the tolerance."""
    eps, rtol, atol = tolerances
    derived = evaluate(gradients, _restrict(given, gradients))
    value_feeds = _restrict(given, [scalar])
    for x, g in zip(targets, derived):
        a = work[x]
        numeric = np.empty(a.shape)
        for index in np.ndindex(a.shape):
            start = a[index].copy()
            a[index] = start + eps
            high, f_high = float(a[index]), float(evaluate([scalar], value_feeds)[0])
            a[index] = start - eps
            low, f_low = float(a[index]), float(evaluate([scalar], value_feeds)[0])
            a[index] = start
            numeric[index] = (f_high - f_low) / (high - low)  # the steps as rounded
        g = np.broadcast_to(np.asarray(g, dtype=np.float64), a.shape)
        bound = atol + rtol * np.abs(numeric)
        excess = np.abs(g - numeric) - bound
        excess[np.isnan(excess)] = np.inf
        if (excess > 0).any():
            worst = np.unravel_index(int(np.argmax(excess)), a.shape)
            entry = "[" + ", ".join(str(int(i)) for i in worst) + "]"
            raise GradientCheckError(
                f"check_grads: {what} with respect to {x.op.name} {x.name!r} disagrees with "
                f"central differences at entry {entry} ({int((excess > 0).sum())} of {a.size} "
                f"entries disagree): gc.grad gives {g[worst]:.10g}, central differences "
                f"give {numeric[worst]:.10g} (eps {eps:g}); |difference| "
                f"{abs(g[worst] - numeric[worst]):.3g} > tolerance {bound[worst]:.3g} "
                f"(atol {atol:g} + rtol {rtol:g} * |central difference|)")


def _describe_output(out: Node, k: int, n: int) -> str:
    which = "the output" if n == 1 else f"output {k}"
    name = f" {out.name!r}" if out.name else ""
    projected = " (through a random projection)" if out.shape != () else ""
    return f"{which}{name}{projected}"
