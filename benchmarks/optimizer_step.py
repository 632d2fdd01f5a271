"""One training step of the digits MLP with Adam, Momentum or RMSProp: hand-tuned flat NumPy
against graphc.

The workload of issue 12: an MLP 64-128-10, ReLU, softmax cross-entropy, one call per
minibatch, with one of three optimizers (`OPTIMIZERS`), each configured in graphc exactly as
the table says and following torch.optim's formula:

- ``adam``: ``gc.Adam(lr=0.003, betas=(0.9, 0.999), eps=1e-8)``, eps added after the bias
  correction;
- ``momentum``: ``gc.Momentum(lr=0.01, mu=0.9)``, i.e. ``SGD(lr, momentum=0.9)``:
  b <- mu * b + g;  w <- w - lr * b;
- ``rmsprop``: ``gc.RMSProp(lr=0.001, alpha=0.99, eps=1e-8)``:
  s <- alpha * s + (1 - alpha) * g^2;  w <- w - lr * g / (sqrt(s) + eps).

At this size the arithmetic is a few microseconds and a step costs its NumPy calls, so the
update is where an implementation wins or loses.

Rows, for each optimizer:

- ``hand_tuned_flat``: NumPy written for speed, every parameter, gradient and optimizer state
  a view of one flat buffer per role (``flat_params``, ``flat_grads``, one per state): the
  weight-gradient products write straight into their views (``out=``), and the update is a
  handful of NumPy calls for all four parameters together (13 for Adam, 4 for Momentum, 9 for
  RMSProp). The forward and backward pass is the same for every optimizer.
- ``graphc``: the generated step at the default level (optimize=2), called as users call it.
  Its flatten pass gives it the same flat storage (see ``graphc emit mlp_digits``).

Both start from the same parameters and minibatch; `reference_check` first checks that they
compute the same loss and the same update (float64, 1e-9 relative, three steps). Run
``python -m benchmarks.optimizer_step --threads 1`` for the tables: all rows of all chosen
optimizers alternated in one process, medians of per-round samples, each optimizer's rows
with their ratios to its own hand_tuned_flat.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from numpy.typing import DTypeLike

from benchmarks.harness import BenchmarkUnavailable, Samples, table, tables_by_dtype_and_batch

SIZES = (64, 128, 10)
PARAM_NAMES = ("W1", "b1", "W2", "b2")


def _adam_update(hyper: Mapping, w: np.ndarray, g: np.ndarray, state: Sequence[np.ndarray],
                 scratch: np.ndarray, t: int) -> None:
    """Adam as torch.optim.Adam, in 13 calls: m and v, then
    w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)."""
    m, v = state
    beta1, beta2 = hyper["betas"]
    step_size = hyper["lr"] / (1 - beta1**t)
    root_correction = math.sqrt(1 - beta2**t)
    np.multiply(m, beta1, out=m)
    np.multiply(g, 1 - beta1, out=scratch)
    np.add(m, scratch, out=m)
    np.square(g, out=scratch)
    np.multiply(scratch, 1 - beta2, out=scratch)
    np.multiply(v, beta2, out=v)
    np.add(v, scratch, out=v)
    np.sqrt(v, out=scratch)
    np.multiply(scratch, 1 / root_correction, out=scratch)
    np.add(scratch, hyper["eps"], out=scratch)
    np.divide(m, scratch, out=scratch)
    np.multiply(scratch, step_size, out=scratch)
    np.subtract(w, scratch, out=w)


def _momentum_update(hyper: Mapping, w: np.ndarray, g: np.ndarray,
                     state: Sequence[np.ndarray], scratch: np.ndarray, t: int) -> None:
    """SGD with momentum as torch.optim.SGD, in 4 calls: b <- mu * b + g;  w <- w - lr * b."""
    (b,) = state
    np.multiply(b, hyper["mu"], out=b)
    np.add(b, g, out=b)
    np.multiply(b, hyper["lr"], out=scratch)
    np.subtract(w, scratch, out=w)


def _rmsprop_update(hyper: Mapping, w: np.ndarray, g: np.ndarray,
                    state: Sequence[np.ndarray], scratch: np.ndarray, t: int) -> None:
    """RMSProp as torch.optim.RMSprop, in 9 calls: s <- alpha * s + (1 - alpha) * g^2 (4),
    then w <- w - lr * g / (sqrt(s) + eps) (5)."""
    (s,) = state
    alpha = hyper["alpha"]
    np.square(g, out=scratch)
    np.multiply(scratch, 1 - alpha, out=scratch)
    np.multiply(s, alpha, out=s)
    np.add(s, scratch, out=s)
    np.sqrt(s, out=scratch)
    np.add(scratch, hyper["eps"], out=scratch)
    np.divide(g, scratch, out=scratch)
    np.multiply(scratch, hyper["lr"], out=scratch)
    np.subtract(w, scratch, out=w)


#: A flat update: ``update(hyper, w, g, state, scratch, t)`` changes the flat parameters `w`
#: and the flat `state` arrays in place from the flat gradient `g` at step `t` (1 first).
FlatUpdate = Callable[[Mapping, np.ndarray, np.ndarray, Sequence[np.ndarray], np.ndarray, int],
                      None]


@dataclass(frozen=True)
class Rule:
    """One optimizer of the benchmark, so that graphc's row and the hand-tuned row cannot
    disagree on it: graphc's class name and the keyword arguments it is built with (which the
    flat update reads too), the prefixes of graphc's state names (``m_`` for ``m_W1``: one
    flat buffer each, in this order), and the hand-tuned flat update."""

    graphc_class: str
    hyper: Mapping[str, object]
    state: tuple[str, ...]
    update: FlatUpdate

    def graphc_optimizer(self) -> object:
        """graphc's optimizer, e.g. ``gc.Adam(lr=0.003, betas=(0.9, 0.999), eps=1e-8)``."""
        import graphc as gc

        return getattr(gc, self.graphc_class)(**self.hyper)

    def flat_update(self, w: np.ndarray, g: np.ndarray, state: Sequence[np.ndarray],
                    scratch: np.ndarray) -> Callable[[], None]:
        """The flat update bound to its arrays: each call is one step, counted from 1."""
        update, hyper, steps = self.update, self.hyper, itertools.count(1)
        return lambda: update(hyper, w, g, state, scratch, next(steps))


OPTIMIZERS: dict[str, Rule] = {
    "adam": Rule("Adam", {"lr": 0.003, "betas": (0.9, 0.999), "eps": 1e-8}, ("m_", "v_"),
                 _adam_update),
    "momentum": Rule("Momentum", {"lr": 0.01, "mu": 0.9}, ("b_",), _momentum_update),
    "rmsprop": Rule("RMSProp", {"lr": 0.001, "alpha": 0.99, "eps": 1e-8}, ("s_",),
                    _rmsprop_update),
}


class Problem:
    """Initial parameters (in PARAM_NAMES order) and one minibatch, from one seed."""

    def __init__(self, batch: int, dtype: DTypeLike, seed: int) -> None:
        rng = np.random.default_rng(seed)
        dtype = np.dtype(dtype)
        n_in, n_hidden, n_out = SIZES
        self.x = rng.standard_normal((batch, n_in)).astype(dtype)
        self.labels = rng.integers(0, n_out, size=batch).astype(np.int64)
        self.params = [
            (rng.standard_normal((n_in, n_hidden)) * np.sqrt(2 / n_in)).astype(dtype),
            (0.1 * rng.standard_normal(n_hidden)).astype(dtype),
            (rng.standard_normal((n_hidden, n_out))
             * np.sqrt(2 / (n_hidden + n_out))).astype(dtype),
            (0.1 * rng.standard_normal(n_out)).astype(dtype),
        ]


class Step:
    """A training step to time: call it for one step (it returns the loss); `params()` reads
    the parameters in PARAM_NAMES order, as they are now."""

    def __init__(self, step: Callable[[], float], params: Callable[[], list[np.ndarray]]) -> None:
        self._step = step
        self.params = params

    def __call__(self) -> float:
        return self._step()


def _offsets(shapes: Sequence[tuple[int, ...]]) -> list[int]:
    """Where each parameter starts in a flat buffer (in PARAM_NAMES order), and its end."""
    return [int(o) for o in np.cumsum([0, *(int(np.prod(s)) for s in shapes)])]


def make_hand_tuned_flat(batch: int, dtype: DTypeLike, seed: int = 0,
                         optimizer: Rule = OPTIMIZERS["adam"]) -> Step:
    """NumPy by hand, at the floor of calls: flat storage for parameters, gradients and the
    optimizer's state, buffers allocated once, every call with ``out=``; the update is
    `optimizer`'s flat update on all parameters at once."""
    problem = Problem(batch, dtype, seed)
    dtype = np.dtype(dtype)
    x, labels = problem.x, problem.labels
    shapes = [p.shape for p in problem.params]
    offsets = _offsets(shapes)
    total = offsets[-1]

    def views(flat: np.ndarray) -> list[np.ndarray]:
        return [flat[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]

    flat_params = np.concatenate([p.ravel() for p in problem.params]).astype(dtype)
    flat_grads = np.zeros(total, dtype)
    update = optimizer.flat_update(flat_params, flat_grads,
                                   [np.zeros(total, dtype) for _ in optimizer.state],
                                   np.empty(total, dtype))
    W1, b1, W2, b2 = views(flat_params)
    d_W1, d_b1, d_W2, d_b2 = views(flat_grads)
    n_hidden, n_out = SIZES[1], SIZES[2]
    h1 = np.empty((batch, n_hidden), dtype)
    zeros_h = np.zeros((batch, n_hidden), dtype)
    mask = np.empty((batch, n_hidden), dtype)
    d_h1 = np.empty((batch, n_hidden), dtype)
    s = np.empty((batch, n_out), dtype)
    p = np.empty((batch, n_out), dtype)
    col = np.empty((batch, 1), dtype)
    ones = np.ones(batch, dtype)
    rows = np.arange(batch)

    def step() -> float:
        # forward
        np.matmul(x, W1, out=h1)
        np.add(h1, b1, out=h1)
        np.maximum(h1, zeros_h, out=h1)
        np.matmul(h1, W2, out=s)
        np.add(s, b2, out=s)
        # softmax cross-entropy and its gradient (softmax - onehot) / B
        s.max(axis=1, keepdims=True, out=col)
        np.subtract(s, col, out=s)
        np.exp(s, out=p)
        p.sum(axis=1, keepdims=True, out=col)
        loss = float(np.log(col).sum() - s[rows, labels].sum()) / batch
        np.divide(p, col, out=p)
        p[rows, labels] -= 1.0
        np.multiply(p, 1.0 / batch, out=p)
        # backward: the weight gradients land in their views of flat_grads
        np.matmul(h1.T, p, out=d_W2)
        np.matmul(ones, p, out=d_b2)
        np.matmul(p, W2.T, out=d_h1)
        np.greater(h1, zeros_h, out=mask)
        np.multiply(d_h1, mask, out=d_h1)
        np.matmul(x.T, d_h1, out=d_W1)
        np.matmul(ones, d_h1, out=d_b1)
        # the optimizer on all four parameters at once
        update()
        return loss

    return Step(step, lambda: [a.copy() for a in (W1, b1, W2, b2)])


def make_graphc(batch: int, dtype: DTypeLike, seed: int = 0, optimize: int = 2,
                optimizer: Rule = OPTIMIZERS["adam"]) -> Step:
    """graphc's generated step with `optimizer` at `optimize` (the default level, 2, unless
    told), called as users call it."""
    import graphc as gc

    problem = Problem(batch, dtype, seed)
    dtype = np.dtype(dtype)
    x = gc.input("x", ("batch", SIZES[0]), dtype=dtype)
    labels = gc.input("labels", ("batch",), dtype="int64")
    W1, b1, W2, b2 = (gc.param(name, value.shape, init=value, dtype=dtype)
                      for name, value in zip(PARAM_NAMES, problem.params, strict=True))
    loss = gc.softmax_cross_entropy(gc.relu(x @ W1 + b1) @ W2 + b2, labels)
    prog = gc.compile([loss], [x, labels], optimizer=optimizer.graphc_optimizer(),
                      optimize=optimize)
    feeds = {"x": problem.x, "labels": problem.labels}

    def step() -> float:
        return float(prog(**feeds)[0])

    return Step(step, lambda: [np.array(prog.params[name]) for name in PARAM_NAMES])


FACTORIES: dict[str, Callable[..., Step]] = {
    "hand_tuned_flat": make_hand_tuned_flat,
    "graphc": make_graphc,
}


def reference_check(optimizer: Rule = OPTIMIZERS["adam"],
                    factories: Mapping[str, Callable[..., Step]] | None = None, batch: int = 8,
                    steps: int = 3, rtol: float = 1e-9) -> None:
    """Every implementation takes `steps` steps with `optimizer` from the same start in
    float64: the losses and the parameters after them must agree with hand_tuned_flat's
    within `rtol`."""
    made = {}
    for name, factory in (factories or FACTORIES).items():
        try:
            made[name] = factory(batch, np.float64, optimizer=optimizer)
        except BenchmarkUnavailable as exc:
            print(f"{optimizer.graphc_class} {name} skipped: {exc}")
    start = made["hand_tuned_flat"].params()
    results = {}
    for name, step in made.items():
        losses = [step() for _ in range(steps)]
        results[name] = (losses, step.params())
    ref_losses, ref_params = results["hand_tuned_flat"]
    for name, (losses, params) in results.items():
        where = f"{optimizer.graphc_class} {name}"
        np.testing.assert_allclose(losses, ref_losses, rtol=rtol, err_msg=f"{where}: loss")
        for pname, p, r, p0 in zip(PARAM_NAMES, params, ref_params, start, strict=True):
            change, ref_change = p - p0, r - p0
            err = np.linalg.norm(change - ref_change) / np.linalg.norm(ref_change)
            assert err < rtol, f"{where}: update of {pname} differs by {err:.2e} relative"


def render_by_optimizer(optimizers: Sequence[str], samples: Samples) -> str:
    """One table per optimizer from samples whose rows are named ``optimizer/row``, each with
    the ratios to that optimizer's own hand_tuned_flat."""
    parts = []
    for name in optimizers:
        prefix = f"{name}/"

        def own(rows: Mapping[str, object], prefix: str = prefix) -> dict:
            return {row.removeprefix(prefix): v for row, v in rows.items()
                    if row.startswith(prefix)}

        own_samples = Samples(own(samples), own(samples.skipped))
        parts.append(f"### {name}\n\n{table(own_samples, baselines=('hand_tuned_flat',))}")
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Check the implementations agree for every chosen optimizer, then time all their rows
    together and print one table per dtype, batch and optimizer."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.optimizer_step",
        description="Time one training step of the digits MLP with each optimizer.")
    parser.add_argument("--optimizer", nargs="+", default=list(OPTIMIZERS),
                        choices=list(OPTIMIZERS))
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"],
                        choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--inner", type=int, default=200, help="steps per sample")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", help="also write the tables (Markdown) to this file")
    args = parser.parse_args(argv)
    rows = {}
    for name in args.optimizer:
        reference_check(OPTIMIZERS[name])
        rows.update({f"{name}/{row}": partial(factory, optimizer=OPTIMIZERS[name])
                     for row, factory in FACTORIES.items()})
    tables_by_dtype_and_batch(rows, args.dtype, args.batch, repeats=args.repeats,
                              inner=lambda batch: args.inner, threads=args.threads,
                              render=partial(render_by_optimizer, args.optimizer),
                              out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
