"""Random graphs as plain data, and their translations into independent oracles.

A graph is a list of ``Step``s, each appending one value to a pool: a leaf (an input fed at
each call, or a parameter with its value) or an op over earlier pool entries (indices) and
Python-number constants. The same steps are built three ways, with no code shared:

- ``build_graphc``: graphc nodes (``gc.tanh``, ``@``, ``gc.conv2d``...);
- ``run_oracle``: HIPS autograd's ``autograd.numpy``, each op written here from its math
  definition (conv2d as a loop over kernel offsets, leaky_relu as ``np.where``...), so that
  ``autograd.grad`` / ``autograd.hessian`` give reference derivatives;
- ``run_micrograd``: micrograd's ``Value`` for the scalar ops it has (+ - * / ** relu).

The generators draw each step with a seeded ``numpy.random.Generator`` and evaluate the
oracle while drawing, on every batch of feeds the graph will be called with: a step is kept
only where its operands lie inside the op's smooth domain (``guard``), far from kinks (relu
at 0, ties of a max) and poles (log, division by zero), and values stay bounded. So every
kept graph has one well-defined derivative everywhere it is evaluated, and a mismatch is a
bug, not a tie broken the other way. ``describe`` prints a graph readably, for failures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import autograd.numpy as anp
import numpy as np

import graphc as gc

#: The least distance of an operand from a kink (relu, abs, max ties, where's condition):
#: far above float64 rounding, so graphc and the oracle always take the same branch.
KINK = 1e-3
#: The least distance from a pole or the edge of a domain (log, sqrt, division, a ** b).
POLE = 0.1
#: The largest magnitude a kept value may have (keeps derivatives and rounding bounded).
BOUND = 1e3
#: Inputs to exp are at most this (exp(5) = 148), those to tanh/sigmoid/softplus this big.
EXP_MAX, SATURATE = 5.0, 30.0

Operand = int | float  # a pool index, or a Python-number constant


@dataclass(frozen=True)
class Step:
    """One pool entry: ``op`` applied to ``args`` (pool indices or float constants), with
    static ``attrs`` (an axis, an exponent, a leaf's name, shape and dtype)."""

    op: str
    args: tuple[Operand, ...] = ()
    attrs: tuple[tuple[str, Any], ...] = ()

    @property
    def kw(self) -> dict[str, Any]:
        return dict(self.attrs)


@dataclass
class Graph:
    """A random graph: its steps, the pool indices it returns (``terminals``, each scalarized
    and summed into the output ``y``, the last step), and one dict of feeds (input name to
    array) per call, with the batch size of that call."""

    category: str
    seed: int
    steps: list[Step] = field(default_factory=list)
    terminals: list[int] = field(default_factory=list)
    feeds: list[dict[str, np.ndarray]] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    #: The pool entries some step reads (leaves a refused step drew stay out of the graph).
    read: set[int] = field(default_factory=set)

    def leaves(self, op: str, kind: str = "biuf") -> list[int]:
        """The pool indices of read ``op`` leaves ("input" or "param"), of a dtype kind in
        ``kind``."""
        return [i for i, s in enumerate(self.steps) if s.op == op and i in self.read
                and np.dtype(s.kw["dtype"]).kind in kind]

    @property
    def wrt(self) -> list[int]:
        """The leaves that gradients are taken with respect to: float inputs and parameters,
        less the random weights ``r<k>`` that scalarize the terminals."""
        return [i for i in sorted(self.leaves("input", "f") + self.leaves("param", "f"))
                if not self.steps[i].kw["name"].startswith("r")]


# --- the ops ---------------------------------------------------------------------------------
def _fmt(a: Operand) -> str:
    return f"v{a}" if isinstance(a, int) else repr(a)


def _finite(*vals) -> bool:
    return all(np.all(np.isfinite(v)) and np.all(np.abs(v) < BOUND) for v in vals)


def _far(v, lo: float) -> bool:
    return bool(np.all(np.abs(v) > lo))


@dataclass(frozen=True)
class Elementwise:
    """An elementwise op: its graphc function, the oracle's (autograd.numpy, from the math
    definition), micrograd's where it has one, and the guard its operands must pass."""

    arity: int
    graphc: Callable
    oracle: Callable
    guard: Callable[..., bool] = lambda *a, **k: True
    micrograd: Callable | None = None
    template: str = ""


def _where(c, x, y):
    """np.where with x and y broadcast first by multiplication, whose gradient autograd
    reduces back to each operand's shape (its where does not)."""
    ones = np.ones(np.broadcast_shapes(np.shape(c), anp.shape(x), anp.shape(y)))
    return anp.where(c, x * ones, y * ones)


def _sigmoid(x):
    return 1.0 / (1.0 + anp.exp(-x))


def _softplus(x):
    return anp.log1p(anp.exp(x))


def _logsumexp(x, axis, keepdims=False):
    m = anp.max(x, axis=axis, keepdims=True)
    out = m + anp.log(anp.sum(anp.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else anp.squeeze(out, axis=axis)


def _pow_guard(a, p):
    if float(p).is_integer():
        return p >= 0 or _far(a, POLE)
    return bool(np.all(a > POLE))


ELEMENTWISE: dict[str, Elementwise] = {
    "add": Elementwise(2, lambda a, b: a + b, lambda a, b: a + b,
                       micrograd=lambda a, b: a + b, template="{0} + {1}"),
    "sub": Elementwise(2, lambda a, b: a - b, lambda a, b: a - b,
                       micrograd=lambda a, b: a - b, template="{0} - {1}"),
    "mul": Elementwise(2, lambda a, b: a * b, lambda a, b: a * b,
                       micrograd=lambda a, b: a * b, template="{0} * {1}"),
    "div": Elementwise(2, lambda a, b: a / b, lambda a, b: a / b,
                       guard=lambda a, b: _far(b, POLE), micrograd=lambda a, b: a / b,
                       template="{0} / {1}"),
    # a ** p for a Python number p (attrs p); node ** node with a positive base
    "pow": Elementwise(1, lambda a, p: a ** p, lambda a, p: a ** p, guard=_pow_guard,
                       micrograd=lambda a, p: a ** p, template="{0} ** {p}"),
    "pow_node": Elementwise(2, lambda a, b: a ** b, lambda a, b: a ** b,
                            guard=lambda a, b: bool(np.all(a > POLE) and np.all(np.abs(b) < 3)),
                            template="{0} ** {1}"),
    "neg": Elementwise(1, lambda a: -a, lambda a: -a, micrograd=lambda a: -a,
                       template="-{0}"),
    "relu": Elementwise(1, gc.relu, lambda a: _where(a > 0, a, 0.0),
                        guard=lambda a: _far(a, KINK), micrograd=lambda a: a.relu(),
                        template="relu({0})"),
    "leaky_relu": Elementwise(1, lambda a, alpha: gc.leaky_relu(a, alpha),
                              lambda a, alpha: _where(a > 0, a, alpha * a),
                              guard=lambda a, alpha: _far(a, KINK),
                              template="leaky_relu({0}, {alpha})"),
    "elu": Elementwise(1, lambda a, alpha: gc.elu(a, alpha),
                       lambda a, alpha: _where(a > 0, a, alpha * anp.expm1(a)),
                       guard=lambda a, alpha: _far(a, KINK) and np.all(a < EXP_MAX),
                       template="elu({0}, {alpha})"),
    "tanh": Elementwise(1, gc.tanh, anp.tanh, guard=lambda a: np.all(np.abs(a) < SATURATE),
                        template="tanh({0})"),
    "sigmoid": Elementwise(1, gc.sigmoid, _sigmoid, guard=lambda a: np.all(np.abs(a) < SATURATE),
                           template="sigmoid({0})"),
    "exp": Elementwise(1, gc.exp, anp.exp, guard=lambda a: np.all(a < EXP_MAX),
                       template="exp({0})"),
    "log": Elementwise(1, gc.log, anp.log, guard=lambda a: np.all(a > POLE),
                       template="log({0})"),
    "sqrt": Elementwise(1, gc.sqrt, anp.sqrt, guard=lambda a: np.all(a > POLE),
                        template="sqrt({0})"),
    "abs": Elementwise(1, gc.abs, lambda a: _where(a > 0, a, -a),
                       guard=lambda a: _far(a, KINK), template="abs({0})"),
    "softplus": Elementwise(1, gc.softplus, _softplus,
                            guard=lambda a: np.all(np.abs(a) < SATURATE),
                            template="softplus({0})"),
    "maximum": Elementwise(2, gc.maximum, lambda a, b: _where(a > b, a, b),
                           guard=lambda a, b: _far(a - b, KINK), template="maximum({0}, {1})"),
    "minimum": Elementwise(2, gc.minimum, lambda a, b: _where(a < b, a, b),
                           guard=lambda a, b: _far(a - b, KINK), template="minimum({0}, {1})"),
    # where(a > b, x, y)
    "where": Elementwise(4, lambda a, b, x, y: gc.where(a > b, x, y),
                         lambda a, b, x, y: _where(a > b, x, y),
                         guard=lambda a, b, x, y: _far(a - b, KINK),
                         template="where({0} > {1}, {2}, {3})"),
}
#: The elementwise ops micrograd's Value has.
MICROGRAD_OPS = [name for name, op in ELEMENTWISE.items() if op.micrograd is not None]
#: The exponents drawn for ``pow`` (number exponents), and the slopes of leaky_relu and elu.
EXPONENTS = (2, 3, -1, -2, 0.5, 1.5, 2.5)
ALPHAS = {"leaky_relu": (0.01, 0.2), "elu": (1.0, 0.5)}

REDUCTIONS = {"sum": (gc.sum, anp.sum), "mean": (gc.mean, anp.mean), "max": (gc.max, anp.max)}
LOSSES = ("mse", "l1", "sigmoid_cross_entropy", "hinge", "softmax_cross_entropy")


def _max_gap(x, axis) -> float:
    """The least gap between the largest and second largest entries along ``axis`` (None:
    all), infinite when there is one entry."""
    flat = np.moveaxis(x, axis, -1) if axis is not None else x.reshape(-1)
    if flat.shape[-1] < 2:
        return np.inf
    top = np.sort(flat, axis=-1)
    return float(np.min(top[..., -1] - top[..., -2]))


def _pad(x, padding):
    ph, pw = padding
    return anp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant") if ph or pw else x


def _windows(x, kernel, stride):
    """The (kh * kw) strided views of NCHW ``x``, one per kernel offset, and the output size."""
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    views = [x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
             for i in range(kh) for j in range(kw)]
    return views, (oh, ow)


def oracle_conv2d(x, w, b, stride, padding):
    """Cross-correlation of NCHW ``x`` with (F, C, kh, kw) filters ``w``: the sum over kernel
    offsets (i, j) of the shifted, strided image contracted with w[:, :, i, j]."""
    views, _ = _windows(_pad(x, padding), w.shape[2:], stride)
    kw = w.shape[3]
    out = 0.0
    for k, view in enumerate(views):
        out = out + anp.einsum("nchw,fc->nfhw", view, w[:, :, k // kw, k % kw])
    return out if b is None else out + anp.reshape(b, (1, -1, 1, 1))


def oracle_pool(x, reduction, kernel, stride):
    views, _ = _windows(x, kernel, stride)
    stack = anp.stack(views)
    return anp.max(stack, axis=0) if reduction == "max" else anp.mean(stack, axis=0)


def _oracle_loss(name, a, t):
    if name == "mse":
        return anp.mean((a - t) ** 2)
    if name == "l1":
        return anp.mean(_where(a > t, a - t, t - a))
    if name == "sigmoid_cross_entropy":
        s = _sigmoid(a)
        return anp.mean(-(t * anp.log(s) + (1 - t) * anp.log(1 - s)))
    rows = np.arange(a.shape[0])
    if name == "hinge":  # sum over j != y of max(0, s_j - s_y + 1), mean over rows
        margins = a - anp.reshape(a[rows, t], (-1, 1)) + 1.0
        others = np.arange(a.shape[1])[None, :] != t[:, None]
        return anp.mean(anp.sum(_where(others & (margins > 0), margins, 0.0), axis=1))
    log_p = a - _logsumexp(a, axis=1, keepdims=True)  # softmax cross-entropy
    return -anp.mean(log_p[rows, t])


def _loss_guard(name, a, t) -> bool:
    if name == "l1":
        return _far(a - t, KINK)
    if name == "sigmoid_cross_entropy":
        return bool(np.all(np.abs(a) < 10))
    if name == "hinge":
        rows = np.arange(a.shape[0])
        margins = a - a[rows, t][:, None] + 1.0
        others = np.arange(a.shape[1])[None, :] != t[:, None]
        return _far(margins[others], KINK)
    return True


def run_step(step: Step, vals: Sequence, leaf: Callable[[Step], Any]):
    """The oracle's value of ``step`` (autograd.numpy) given the pool's values ``vals``;
    ``leaf(step)`` gives a leaf's value."""
    kw = step.kw
    a = [vals[x] if isinstance(x, int) else x for x in step.args]
    if step.op in ("input", "param"):
        return leaf(step)
    if step.op in ELEMENTWISE:
        return ELEMENTWISE[step.op].oracle(*a, **kw)
    if step.op in REDUCTIONS:
        return REDUCTIONS[step.op][1](a[0], axis=kw["axis"], keepdims=kw["keepdims"])
    if step.op == "softmax":
        e = anp.exp(a[0] - anp.max(a[0], axis=kw["axis"], keepdims=True))
        return e / anp.sum(e, axis=kw["axis"], keepdims=True)
    if step.op == "log_softmax":
        return a[0] - _logsumexp(a[0], kw["axis"], keepdims=True)
    if step.op == "logsumexp":
        return _logsumexp(a[0], kw["axis"], kw["keepdims"])
    if step.op == "matmul":
        return anp.matmul(a[0], a[1])
    if step.op == "transpose":
        return anp.transpose(a[0], kw["axes"])
    if step.op == "reshape":
        return anp.reshape(a[0], (a[0].shape[0], *kw["shape"][1:]))
    if step.op == "concatenate":
        return anp.concatenate([a[0], a[1]], axis=kw["axis"])
    if step.op in LOSSES:
        return _oracle_loss(step.op, a[0], a[1])
    if step.op == "l2_penalty":
        return kw["lam"] / 2 * sum(anp.sum(p ** 2) for p in a)
    if step.op == "conv2d":
        return oracle_conv2d(a[0], a[1], a[2] if len(a) > 2 else None, kw["stride"],
                             kw["padding"])
    if step.op in ("max_pool2d", "avg_pool2d"):
        return oracle_pool(a[0], step.op[:3], kw["kernel"], kw["stride"])
    if step.op == "scalarize":  # sum_k sum(terminal_k * weight_k)
        half = len(a) // 2
        return sum(anp.sum(t * w) for t, w in zip(a[:half], a[half:]))
    raise AssertionError(step.op)


def run_oracle(graph: Graph, feeds: dict[str, np.ndarray], override: dict[int, Any] = {}):  # noqa: B006
    """All pool values of ``graph`` for one call's ``feeds``; leaves in ``override`` (pool
    index to value, e.g. autograd's traced boxes) replace their feeds or parameter values."""
    vals: list = []

    def leaf(step: Step):
        i = len(vals)
        if i in override:
            return override[i]
        name = step.kw["name"]
        return feeds[name] if step.op == "input" else graph.params[name]

    for step in graph.steps:
        vals.append(run_step(step, vals, leaf))
    return vals


def build_graphc(graph: Graph) -> list[gc.Node]:
    """The graph as graphc nodes, one per step."""
    nodes: list[gc.Node] = []
    for step in graph.steps:
        kw = step.kw
        a = [nodes[x] if isinstance(x, int) else x for x in step.args]
        if step.op == "input":
            node = gc.input(kw["name"], kw["shape"], dtype=kw["dtype"])
        elif step.op == "param":
            node = gc.param(kw["name"], kw["shape"], init=graph.params[kw["name"]].copy())
        elif step.op in ELEMENTWISE:
            node = ELEMENTWISE[step.op].graphc(*a, **kw)
        elif step.op in REDUCTIONS:
            node = REDUCTIONS[step.op][0](a[0], axis=kw["axis"], keepdims=kw["keepdims"])
        elif step.op in ("softmax", "log_softmax"):
            node = getattr(gc, step.op)(a[0], axis=kw["axis"])
        elif step.op == "logsumexp":
            node = gc.logsumexp(a[0], axis=kw["axis"], keepdims=kw["keepdims"])
        elif step.op == "matmul":
            node = a[0] @ a[1]
        elif step.op == "transpose":
            node = a[0].T if kw["axes"] == (1, 0) else gc.transpose(a[0], kw["axes"])
        elif step.op == "reshape":
            node = gc.reshape(a[0], kw["shape"])
        elif step.op == "concatenate":
            node = gc.concatenate([a[0], a[1]], axis=kw["axis"])
        elif step.op == "softmax_cross_entropy":
            node = gc.softmax_cross_entropy(a[0], a[1])
        elif step.op in LOSSES:
            node = getattr(gc, step.op)(a[0], a[1])
        elif step.op == "l2_penalty":
            node = gc.l2_penalty(a, kw["lam"])
        elif step.op == "conv2d":
            node = gc.conv2d(*a, stride=kw["stride"], padding=kw["padding"])
        elif step.op in ("max_pool2d", "avg_pool2d"):
            node = getattr(gc, step.op)(a[0], kw["kernel"], kw["stride"])
        elif step.op == "scalarize":
            half = len(a) // 2
            terms = [gc.sum(t * w) if t.shape else t * w for t, w in zip(a[:half], a[half:])]
            node = terms[0]
            for t in terms[1:]:
                node = node + t
        else:
            raise AssertionError(step.op)
        nodes.append(node)
    return nodes


def run_micrograd(graph: Graph, feeds: dict[str, np.ndarray]):
    """The scalar graph in micrograd Values: the output, and each input's Value by name,
    whose ``.grad`` holds d y / d input after ``backward()``."""
    from micrograd.engine import Value

    vals: list = []
    inputs = {}
    for step in graph.steps:
        a = [vals[x] if isinstance(x, int) else x for x in step.args]
        if step.op == "input":
            inputs[step.kw["name"]] = Value(float(feeds[step.kw["name"]]))
            vals.append(inputs[step.kw["name"]])
        elif step.op == "scalarize":
            half = len(a) // 2
            vals.append(sum((t * w for t, w in zip(a[:half], a[half:])), Value(0.0)))
        else:
            vals.append(ELEMENTWISE[step.op].micrograd(*a, **step.kw))
    return vals[-1], inputs


def describe(graph: Graph) -> str:
    """The graph, one step a line (``v3 = tanh(v1)``), then the feeds of each call."""
    lines = [f"{graph.category} graph, seed {graph.seed}:"]
    for i, step in enumerate(graph.steps):
        kw = step.kw
        args = [_fmt(x) for x in step.args]
        if step.op in ("input", "param"):
            text = f"{step.op} {kw['name']!r} {kw['shape']} {kw['dtype']}"
        elif step.op in ELEMENTWISE:
            text = ELEMENTWISE[step.op].template.format(*args, **kw)
        else:
            extra = ", ".join(f"{k}={v!r}" for k, v in kw.items())
            text = f"{step.op}({', '.join(args)}{', ' if extra else ''}{extra})"
        lines.append(f"  v{i} = {text}")
    lines.append(f"  terminals {[f'v{t}' for t in graph.terminals]}")
    for batch, feeds in zip(graph.batches, graph.feeds):
        shown = {k: np.round(v, 4).tolist() for k, v in feeds.items()}
        lines.append(f"  feeds (batch {batch}): {shown}")
    return "\n".join(lines)


# --- generators ---------------------------------------------------------------------------
class Builder:
    """Draws a graph step by step, evaluating the oracle on every call's feeds as it goes,
    and keeps a step only where its guard holds on all of them."""

    def __init__(self, category: str, seed: int, batches: Sequence[int]):
        self.rng = np.random.default_rng([seed, sum(map(ord, category))])
        self.graph = Graph(category, seed, feeds=[{} for _ in batches], batches=list(batches))
        self.vals: list[list] = [[] for _ in batches]
        self.shapes: list[tuple] = []
        self.used: list[int] = []

    def concrete(self, shape, batch: int) -> tuple[int, ...]:
        return tuple(batch if d == "batch" else d for d in shape)

    def leaf(self, op: str, shape, dtype: str = "float64", draw=None) -> int:
        """A new input (fed per call, drawn by ``draw(rng, concrete_shape)``) or parameter."""
        name = f"{'x' if op == 'input' else 'w'}{len(self.shapes)}"
        draw = draw or (lambda rng, s: rng.uniform(-1.5, 1.5, s))
        return self._leaf(op, name, shape, dtype, draw)

    def _leaf(self, op, name, shape, dtype, draw) -> int:
        step = Step(op, (), (("name", name), ("shape", tuple(shape)), ("dtype", dtype)))
        if op == "param":
            self.graph.params[name] = np.asarray(draw(self.rng, shape), dtype=dtype)
        for k, batch in enumerate(self.graph.batches):
            if op == "input":
                self.graph.feeds[k][name] = np.asarray(
                    draw(self.rng, self.concrete(shape, batch)), dtype=dtype)
            value = (self.graph.feeds[k][name] if op == "input"
                     else self.graph.params[name])
            self.vals[k].append(value)
        self.graph.steps.append(step)
        self.shapes.append(tuple(shape))
        self.used.append(0)
        return len(self.shapes) - 1

    def weight(self, shape) -> int:
        """A random weighting input ``r<k>`` that scalarizes a terminal."""
        return self._leaf("input", f"r{len(self.shapes)}", shape, "float64",
                          lambda rng, s: rng.standard_normal(s))

    def try_step(self, step: Step, shape, guard=None) -> int | None:
        """Append ``step`` (of symbolic ``shape``) if its values are finite and bounded on every
        call and ``guard(*operand_values)`` holds; return its index, or None."""
        out = []
        for vals in self.vals:
            a = [vals[x] if isinstance(x, int) else x for x in step.args]
            if guard is not None and not guard(*a):
                return None
            with np.errstate(all="ignore"):
                value = run_step(step, vals, lambda s: None)
            if not _finite(value):
                return None
            out.append(value)
        for vals, value in zip(self.vals, out):
            vals.append(value)
        for x in step.args:
            if isinstance(x, int):
                self.used[x] += 1
        self.graph.steps.append(step)
        self.shapes.append(tuple(shape))
        self.used.append(0)
        return len(self.shapes) - 1

    def pick(self, candidates: Sequence[int]) -> int:
        """A pool index among ``candidates``, recent ones likelier (deeper graphs)."""
        weights = np.arange(1, len(candidates) + 1, dtype=float)
        return int(candidates[self.rng.choice(len(candidates), p=weights / weights.sum())])

    def elementwise(self, name: str, among: Sequence[int], constants: bool = True) -> int | None:
        """Try ``name`` over operands drawn from ``among`` that broadcast together; a binary
        op's second operand is sometimes a number, sometimes the first operand again."""
        op = ELEMENTWISE[name]
        first = self.pick(among)
        args = [first]
        for _ in range(op.arity - 1):
            r = self.rng.random()
            if constants and r < 0.2 and name != "where":
                args.append(float(np.round(self.rng.uniform(-3, 3), 2)))
            elif r < 0.4:
                args.append(first)  # a node used twice
            else:
                args.append(self.pick(among))
        if op.arity == 2 and constants and self.rng.random() < 0.15 and name not in (
                "pow_node",):
            args.reverse()  # a number on the left: 1.5 - v, 2.0 / v
        attrs: tuple = ()
        if name == "pow":
            attrs = (("p", EXPONENTS[self.rng.integers(len(EXPONENTS))]),)
        elif name in ALPHAS:
            attrs = (("alpha", ALPHAS[name][self.rng.integers(2)]),)
        shapes = [self.shapes[x] for x in args if isinstance(x, int)]
        try:
            shape = broadcast(*shapes)
        except ValueError:
            return None
        kw = dict(attrs)
        return self.try_step(Step(name, tuple(args), attrs), shape,
                             lambda *a: bool(op.guard(*a, **kw)))

    def finish(self, terminals: list[int]) -> Graph:
        """Sum the terminals, each weighted by a random input of its shape (a number for a
        scalar), into the output ``y``."""
        weights = []
        for t in terminals:
            weights.append(self.weight(self.shapes[t]) if self.shapes[t]
                           else float(np.round(self.rng.uniform(0.5, 2), 2)))
        self.graph.terminals = terminals
        index = self.try_step(Step("scalarize", (*terminals, *weights)), ())
        assert index is not None, describe(self.graph)
        self.graph.read = {i for i, n in enumerate(self.used) if n}
        return self.graph


def broadcast(*shapes) -> tuple:
    """NumPy's broadcast of symbolic shapes ("batch" broadcasts only with itself and 1)."""
    ndim = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (ndim - len(s)) + tuple(s) for s in shapes]):
        named = {d for d in dims if d != 1}
        if len(named) > 1:
            raise ValueError(f"{shapes} do not broadcast")
        out.append(named.pop() if named else 1)
    return tuple(out)


def scalar_graph(seed: int, ops: Sequence[str], category: str = "scalar") -> Graph:
    """A scalar DAG over 1 to 3 inputs (values of either sign, |x| in [0.3, 2]) of 2 to 9
    elementwise ops drawn from ``ops``, with constants and shared subexpressions; its
    terminals (pool entries nothing else reads) are the outputs."""
    b = Builder(category, seed, batches=[1])
    for _ in range(int(b.rng.integers(1, 4))):
        b.leaf("input", (), draw=lambda rng, s: rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 2))
    inputs = list(range(len(b.shapes)))
    for _ in range(int(b.rng.integers(2, 10))):
        for _attempt in range(20):
            if b.elementwise(str(b.rng.choice(ops)), range(len(b.shapes))) is not None:
                break
    terminals = [i for i in range(len(inputs), len(b.shapes)) if not b.used[i]]
    return b.finish(terminals or [len(b.shapes) - 1])


#: The batch sizes a tensor graph's program is called with, in turn.
BATCHES = (3, 5, 3)


def tensor_graph(seed: int, ops: Sequence[str], category: str = "tensor") -> Graph:
    """A tensor graph with a symbolic batch dimension: inputs ("batch", N), ("batch", 1),
    (1, N) and sometimes ("batch", M, N) (or an NCHW image for category "conv"); then 3 to 8
    steps among elementwise ops with broadcasting, keepdims reductions, softmax and friends,
    matmuls (batched too), transposes, reshapes, concatenations, conv2d and pooling; then the
    losses and the L2 penalty. Elementwise ops come from ``ops``."""
    b = Builder(category, seed, batches=BATCHES)
    rng = b.rng
    n = int(rng.integers(2, 4))
    b.leaf("input", ("batch", n))
    b.leaf("input", ("batch", 1))
    b.leaf("param", (1, n))
    if category == "conv":
        c, h = int(rng.integers(1, 3)), int(rng.integers(4, 7))
        image = b.leaf("input", ("batch", c, h, h))
        conv_step(b, image)
    elif rng.random() < 0.5:
        b.leaf("input", ("batch", 2, n))
    terminals: list[int] = []
    for _ in range(int(rng.integers(3, 9))):
        for _attempt in range(20):
            if tensor_step(b, ops) is not None:
                break
    terminals += [i for i, s in enumerate(b.graph.steps) if s.op not in ("input", "param")
                  and not b.used[i]]
    for _ in range(int(rng.integers(1, 3))):
        loss = loss_step(b)
        if loss is not None:
            terminals.append(loss)
    params = [i for i, s in enumerate(b.graph.steps) if s.op == "param" and b.used[i]]
    if params and rng.random() < 0.5:
        terminals.append(b.try_step(Step("l2_penalty", tuple(params), (("lam", 0.1),)), ()))
    return b.finish(terminals)


def conv_step(b: Builder, x: int) -> int | None:
    """conv2d of the NCHW node ``x`` with a (F, C, k, k) parameter, a bias sometimes,
    stride 1 or 2 and padding 0 or 1."""
    rng = b.rng
    _, c, h, w = b.shapes[x]
    k = int(rng.integers(1, min(h, w, 3) + 1))
    f, s, p = int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
    args = [x, b.leaf("param", (f, c, k, k))]
    if rng.random() < 0.5:
        args.append(b.leaf("param", (f,)))
    out = ((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
    return b.try_step(Step("conv2d", tuple(args), (("stride", (s, s)), ("padding", (p, p)))),
                      ("batch", f, *out))


def pool_step(b: Builder, x: int) -> int | None:
    """max_pool2d or avg_pool2d of the NCHW node ``x``: kernel 2 (or 1 by 2), stride = kernel
    or 1; max only where every window has one clear maximum."""
    rng = b.rng
    _, c, h, w = b.shapes[x]
    if h < 2 or w < 2:
        return None
    kernel = ((2, 2), (1, 2), (2, 1))[rng.integers(3)]
    stride = kernel if rng.random() < 0.5 else (1, 1)
    op = ("max_pool2d", "avg_pool2d")[rng.integers(2)]

    def guard(v):
        views, _ = _windows(v, kernel, stride)
        return op == "avg_pool2d" or _max_gap(np.stack(views), 0) > KINK

    out = ((h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1)
    return b.try_step(Step(op, (x,), (("kernel", kernel), ("stride", stride))),
                      ("batch", c, *out), guard)


def tensor_step(b: Builder, ops: Sequence[str]) -> int | None:
    """One random step over the pool (see ``tensor_graph``), or None if the drawn one was
    refused (a guard failed, or it does not apply to the drawn operand)."""
    rng = b.rng
    i = b.pick(range(len(b.shapes)))
    a = b.shapes[i]
    kinds = ["elementwise", "elementwise", "reduce"]
    kinds += ["axis", "transpose", "concatenate", "reshape"] if len(a) >= 2 else []
    kinds += ["matmul"] if len(a) in (2, 3) else []
    kinds += ["conv", "pool", "pool"] if len(a) == 4 and a[0] == "batch" else []
    kind = kinds[rng.integers(len(kinds))]
    if kind == "elementwise":
        name = str(rng.choice(ops))
        same = [j for j, s in enumerate(b.shapes) if _broadcasts(s, a)]
        return b.elementwise(name, same)
    if kind == "reduce":
        op = ("sum", "mean", "max")[rng.integers(3)]
        axis = None if not a or rng.random() < 0.25 else int(rng.integers(len(a)))
        keepdims = bool(rng.random() < 0.6)
        axes = range(len(a)) if axis is None else [axis]
        shape = tuple(1 if k in axes else d for k, d in enumerate(a) if keepdims or k not in axes)
        guard = (lambda v: _max_gap(v, axis) > KINK) if op == "max" else None
        return b.try_step(Step(op, (i,), (("axis", axis), ("keepdims", keepdims))), shape, guard)
    if kind == "axis":
        op = ("softmax", "log_softmax", "logsumexp")[rng.integers(3)]
        axis = int(rng.integers(len(a)))
        attrs: tuple = (("axis", axis),)
        shape = a
        if op == "logsumexp":
            keepdims = bool(rng.random() < 0.5)
            attrs += (("keepdims", keepdims),)
            shape = tuple(1 if k == axis else d for k, d in enumerate(a) if keepdims or k != axis)
        return b.try_step(Step(op, (i,), attrs), shape)
    if kind == "transpose":
        axes = tuple(int(k) for k in rng.permutation(len(a)))
        if len(a) == 2:
            axes = (1, 0)
        return b.try_step(Step("transpose", (i,), (("axes", axes),)), tuple(a[k] for k in axes))
    if kind == "concatenate":
        axes = [k for k, d in enumerate(a) if d != "batch"]
        if not axes:
            return None
        axis = axes[rng.integers(len(axes))]
        other = b.leaf("input", a)  # a fresh input: no ties between the two halves
        shape = tuple(2 * d if k == axis else d for k, d in enumerate(a))
        return b.try_step(Step("concatenate", (i, other), (("axis", axis),)), shape)
    if kind == "reshape":
        if a[0] != "batch":
            return None
        rest = int(np.prod(a[1:]))
        target = ("batch", rest) if len(a) > 2 else ("batch", 1, rest)
        if len(a) == 2 and rest % 2 == 0 and rng.random() < 0.5:
            target = ("batch", 2, rest // 2)
        return b.try_step(Step("reshape", (i,), (("shape", target),)), target)
    if kind == "matmul":
        p = int(rng.integers(1, 4))
        if len(a) == 3 and a[0] == "batch" and rng.random() < 0.7:
            other = b.leaf("input", ("batch", a[2], p))  # batched matmul
        else:  # a parameter; an input where the inner dimension is the batch
            other = b.leaf("param" if a[-1] != "batch" else "input", (a[-1], p))
        return b.try_step(Step("matmul", (i, other)), (*a[:-1], p))
    if kind == "conv":
        return conv_step(b, i)
    return pool_step(b, i)


def _broadcasts(a, b) -> bool:
    try:
        broadcast(a, b)
    except ValueError:
        return False
    return True


def loss_step(b: Builder) -> int | None:
    """A loss of a pool entry against a fresh target: mse, l1, sigmoid cross-entropy against
    targets in [0, 1] of its shape; hinge and softmax cross-entropy of ("batch", C) scores
    against integer labels."""
    rng = b.rng
    name = LOSSES[rng.integers(len(LOSSES))]
    if name in ("hinge", "softmax_cross_entropy"):
        scores = [j for j, s in enumerate(b.shapes) if len(s) == 2 and s[0] == "batch"
                  and s[1] != "batch" and b.graph.steps[j].op != "input"]
        if not scores:
            return None
        i = b.pick(scores)
        classes = b.shapes[i][1]
        target = b.leaf("input", ("batch",), "int64",
                        lambda r, s: r.integers(0, classes, s))
    else:
        i = b.pick([j for j, s in enumerate(b.shapes) if b.graph.steps[j].op != "input"]
                   or range(len(b.shapes)))
        target = b.leaf("input", b.shapes[i], draw=lambda r, s: r.uniform(0, 1, s))
    return b.try_step(Step(name, (i, target)), (), lambda v, t: _loss_guard(name, v, t))
