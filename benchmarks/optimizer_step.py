"""One training step of the digits MLP with Adam, Momentum or RMSProp: hand-tuned flat NumPy
against graphc, PyTorch and JAX.

The workload of issue 12: an MLP 64-128-10, ReLU, softmax cross-entropy, one call per
minibatch, with one of three optimizers (`OPTIMIZERS`), each configured in graphc exactly as
the table says and following torch.optim's formula:

- ``adam``: ``gc.Adam(lr=0.003, betas=(0.9, 0.999), eps=1e-8)``, eps added after the bias
  correction (``torch.optim.Adam`` with the same arguments);
- ``momentum``: ``gc.Momentum(lr=0.01, mu=0.9)``, i.e. ``torch.optim.SGD(lr, momentum=0.9)``:
  b <- mu * b + g;  w <- w - lr * b;
- ``rmsprop``: ``gc.RMSProp(lr=0.001, alpha=0.99, eps=1e-8)`` (``torch.optim.RMSprop``):
  s <- alpha * s + (1 - alpha) * g^2;  w <- w - lr * g / (sqrt(s) + eps).

At this size the arithmetic is a few microseconds and a step costs its library calls, so the
update is where an implementation wins or loses.

Rows, for each optimizer:

- ``hand_tuned_flat``: NumPy written for speed, every parameter, gradient and optimizer state
  a view of one flat buffer per role (``flat_params``, ``flat_grads``, one per state): the
  weight-gradient products write straight into their views (``out=``), and the update is a
  handful of NumPy calls for all four parameters together (13 for Adam, 4 for Momentum, 9 for
  RMSProp). The forward and backward pass is the same for every optimizer.
- ``graphc``: the generated step at the default level (optimize=2), called as users call it.
  Its flatten pass gives it the same flat storage (see ``graphc emit mlp_digits``).
- ``torch_eager``: PyTorch eager on one thread, the MLP written with torch.nn.functional
  (weights in nn.Linear's layout), ``backward()``, then the torch.optim optimizer with its
  default implementation (on the CPU in torch 2.13 that is the per-parameter loop: its
  foreach kernels are for accelerators only).
- ``torch_fused``: the same with ``fused=True``, torch.optim's one-kernel update (Adam and SGD
  have it on the CPU; RMSprop has none, so that row is unavailable).
- ``jax_jit``: JAX with the whole step (loss, gradient and the optimizer's update written out
  with jax.numpy) under one ``jax.jit``, parameters and state donated and returned, XLA on
  one thread.

Every row starts from the same parameters and minibatch; `reference_check` first checks that
they compute the same loss and the same update (float64, 1e-9 relative, three steps). A row
whose library does not import (``pip install -e '.[bench,compare]'`` installs PyTorch and
JAX) is skipped, and its table says so. Run ``python -m benchmarks.optimizer_step --threads 1``
for the tables: all rows of all chosen optimizers alternated in one process, medians of
per-round samples, each optimizer's rows with their ratios to its own hand_tuned_flat.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from benchmarks.harness import (
    BenchmarkUnavailable,
    Samples,
    source_numpy_calls,
    table,
    tables_by_dtype_and_batch,
    with_calls,
)

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


def _adam_jax(hyper: Mapping, w: Any, g: Any, state: tuple, t: Any) -> tuple[Any, tuple]:
    """Adam as torch.optim.Adam, for one JAX array: the new w and (m, v)."""
    import jax.numpy as jnp

    m, v = state
    beta1, beta2 = hyper["betas"]
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * jnp.square(g)
    step_size = hyper["lr"] / (1 - beta1**t)
    return w - step_size * m / (jnp.sqrt(v) / jnp.sqrt(1 - beta2**t) + hyper["eps"]), (m, v)


def _momentum_jax(hyper: Mapping, w: Any, g: Any, state: tuple, t: Any) -> tuple[Any, tuple]:
    """SGD with momentum as torch.optim.SGD, for one JAX array: the new w and (b,)."""
    (b,) = state
    b = hyper["mu"] * b + g
    return w - hyper["lr"] * b, (b,)


def _rmsprop_jax(hyper: Mapping, w: Any, g: Any, state: tuple, t: Any) -> tuple[Any, tuple]:
    """RMSProp as torch.optim.RMSprop, for one JAX array: the new w and (s,)."""
    import jax.numpy as jnp

    (s,) = state
    alpha = hyper["alpha"]
    s = alpha * s + (1 - alpha) * jnp.square(g)
    return w - hyper["lr"] * g / (jnp.sqrt(s) + hyper["eps"]), (s,)


#: A JAX update: ``update(hyper, w, g, state, t)`` is the new parameter array and the tuple of
#: its new state arrays, from its gradient `g` at step `t` (an array of w's dtype, 1 first);
#: traced inside the jitted step, so it is written with jax.numpy and returns new arrays.
JaxUpdate = Callable[[Mapping, Any, Any, tuple, Any], tuple[Any, tuple]]


@dataclass(frozen=True)
class Rule:
    """One optimizer of the benchmark, so that the rows cannot disagree on it: graphc's class
    name and the keyword arguments it is built with (which the flat update, torch.optim and
    the JAX update read too), the prefixes of graphc's state names (``m_`` for ``m_W1``: one
    flat buffer each, in this order), the hand-tuned flat update, torch.optim's class name,
    the JAX update, and the arguments torch.optim names otherwise (``mu`` is ``momentum``)."""

    graphc_class: str
    hyper: Mapping[str, object]
    state: tuple[str, ...]
    update: FlatUpdate
    torch_class: str
    jax_update: JaxUpdate
    torch_names: Mapping[str, str] = field(default_factory=dict)

    def graphc_optimizer(self) -> object:
        """graphc's optimizer, e.g. ``gc.Adam(lr=0.003, betas=(0.9, 0.999), eps=1e-8)``."""
        import graphc as gc

        return getattr(gc, self.graphc_class)(**self.hyper)

    def flat_update(self, w: np.ndarray, g: np.ndarray, state: Sequence[np.ndarray],
                    scratch: np.ndarray) -> Callable[[], None]:
        """The flat update bound to its arrays: each call is one step, counted from 1."""
        update, hyper, steps = self.update, self.hyper, itertools.count(1)
        return lambda: update(hyper, w, g, state, scratch, next(steps))

    def torch_optimizer(self, torch: ModuleType, params: list, fused: bool) -> Any:
        """torch.optim's optimizer over `params` with these arguments, e.g.
        ``torch.optim.SGD(params, lr=0.01, momentum=0.9)``, with ``fused=True`` if `fused`
        (BenchmarkUnavailable where torch.optim has no fused implementation of it)."""
        cls = getattr(torch.optim, self.torch_class)
        settings = {self.torch_names.get(k, k): v for k, v in self.hyper.items()}
        if fused:
            if "fused" not in inspect.signature(cls).parameters:
                raise BenchmarkUnavailable(f"torch.optim.{self.torch_class} has no fused "
                                           f"implementation in torch {torch.__version__}")
            settings["fused"] = True
        try:
            return cls(params, **settings)
        except RuntimeError as exc:  # fused, but not for these tensors
            raise BenchmarkUnavailable(f"torch.optim.{self.torch_class}: {exc}") from exc


OPTIMIZERS: dict[str, Rule] = {
    "adam": Rule("Adam", {"lr": 0.003, "betas": (0.9, 0.999), "eps": 1e-8}, ("m_", "v_"),
                 _adam_update, "Adam", _adam_jax),
    "momentum": Rule("Momentum", {"lr": 0.01, "mu": 0.9}, ("b_",), _momentum_update, "SGD",
                     _momentum_jax, {"mu": "momentum"}),
    "rmsprop": Rule("RMSProp", {"lr": 0.001, "alpha": 0.99, "eps": 1e-8}, ("s_",),
                    _rmsprop_update, "RMSprop", _rmsprop_jax),
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
    the parameters in PARAM_NAMES order, as they are now; `numpy_calls` is its NumPy calls
    per step where it is NumPy (graphc's and the hand-tuned step's), else None."""

    def __init__(self, step: Callable[[], float], params: Callable[[], list[np.ndarray]],
                 numpy_calls: int | None = None) -> None:
        self._step = step
        self.params = params
        self.numpy_calls = numpy_calls

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

    return Step(step, lambda: [a.copy() for a in (W1, b1, W2, b2)],
                _hand_tuned_calls(optimizer))


def _hand_tuned_calls(optimizer: Rule) -> int:
    """The hand-tuned step's NumPy calls, counted from its source as ``Program.report`` counts
    graphc's ``main`` (calls, binary operators and augmented assignments, Python scalar
    arithmetic included), its call of the flat update counted as that update's body."""
    step = source_numpy_calls(make_hand_tuned_flat, "step")
    return step - 1 + source_numpy_calls(optimizer.update)


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

    return Step(step, lambda: [np.array(prog.params[name]) for name in PARAM_NAMES],
                int(prog.report(batch=batch).rows[-1][2]))


def _import(name: str) -> ModuleType:
    """The module `name`, or BenchmarkUnavailable saying why it does not import."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BenchmarkUnavailable(f"{name} does not import ({exc}); "
                                   "pip install -e '.[bench,compare]'") from exc


def make_torch(batch: int, dtype: DTypeLike, seed: int = 0,
               optimizer: Rule = OPTIMIZERS["adam"], fused: bool = False) -> Step:
    """PyTorch eager on the CPU as its users write a step: the MLP in torch.nn.functional with
    the weights in nn.Linear's (out, in) layout, ``backward()``, then `optimizer` from
    torch.optim, its default implementation or (`fused`) its fused one. PyTorch runs on one
    thread (``torch.set_num_threads(1)``, for the whole process), like the NumPy rows."""
    torch = _import("torch")
    functional = torch.nn.functional
    torch.set_num_threads(1)
    problem = Problem(batch, dtype, seed)
    x, labels = torch.from_numpy(problem.x), torch.from_numpy(problem.labels)
    params = [torch.from_numpy(np.ascontiguousarray(p.T)).requires_grad_()
              for p in problem.params]
    W1, b1, W2, b2 = params
    torch_optimizer = optimizer.torch_optimizer(torch, params, fused)

    def step() -> float:
        torch_optimizer.zero_grad()
        hidden = functional.relu(functional.linear(x, W1, b1))
        loss = functional.cross_entropy(functional.linear(hidden, W2, b2), labels)
        loss.backward()
        torch_optimizer.step()
        return loss.item()

    return Step(step, lambda: [p.detach().numpy().T.copy() for p in params])


#: XLA's flags for one thread in each computation: `make_jax_jit` sets them (keeping any other
#: flags of XLA_FLAGS) when jax is not imported yet, since XLA reads them when it starts.
XLA_ONE_THREAD = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")


def make_jax_jit(batch: int, dtype: DTypeLike, seed: int = 0,
                 optimizer: Rule = OPTIMIZERS["adam"]) -> Step:
    """JAX on the CPU with the whole step (value_and_grad of the loss, then `optimizer`'s
    update written out with jax.numpy) under one jax.jit, which takes the parameters, the
    optimizer's state and the step count, donated (so XLA may update them in place), and
    returns the new ones with the loss. Each call waits for the loss (block_until_ready):
    one XLA computation makes the loss and the new state, so the time is the whole step.

    float64 needs JAX's x64 mode, which this factory switches on for the whole process when
    asked for float64; a float32 step stays float32 under it (the step count is an array of
    the parameters' dtype, the constants Python floats), which `reference_check` checks."""
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "").split()
        os.environ["XLA_FLAGS"] = " ".join([*flags, *(f for f in XLA_ONE_THREAD
                                                      if f not in flags)])
    jax = _import("jax")
    jnp = jax.numpy
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    problem = Problem(batch, dtype, seed)
    x, labels = jnp.asarray(problem.x), jnp.asarray(problem.labels.astype(np.int32))

    def loss_of(params: list, x: Any, labels: Any) -> Any:
        W1, b1, W2, b2 = params
        log_p = jax.nn.log_softmax(jax.nn.relu(x @ W1 + b1) @ W2 + b2)
        return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))

    @partial(jax.jit, donate_argnums=(0, 1, 2))
    def train_step(params: list, state: list, t: Any, x: Any,
                   labels: Any) -> tuple[list, list, Any, Any]:
        loss, grads = jax.value_and_grad(loss_of)(params, x, labels)
        t = t + 1
        new = [optimizer.jax_update(optimizer.hyper, w, g, s, t)
               for w, g, s in zip(params, grads, state, strict=True)]
        return [w for w, _ in new], [s for _, s in new], t, loss

    params = [jnp.asarray(p) for p in problem.params]
    state = [tuple(jnp.zeros_like(p) for _ in optimizer.state) for p in params]
    t = jnp.zeros((), dtype)

    def step() -> float:
        nonlocal params, state, t
        params, state, t, loss = train_step(params, state, t, x, labels)
        return float(loss.block_until_ready())

    return Step(step, lambda: [np.array(p, copy=True) for p in params])


FACTORIES: dict[str, Callable[..., Step]] = {
    "hand_tuned_flat": make_hand_tuned_flat,
    "graphc": make_graphc,
    "torch_eager": make_torch,
    "torch_fused": partial(make_torch, fused=True),
    "jax_jit": make_jax_jit,
}


def reference_check(optimizer: Rule = OPTIMIZERS["adam"],
                    factories: Mapping[str, Callable[..., Step]] | None = None, batch: int = 8,
                    steps: int = 3, rtol: float = 1e-9,
                    dtype: DTypeLike = np.float64) -> dict[str, str]:
    """Every implementation (by default every row) takes `steps` steps with `optimizer` from
    the same start in `dtype`: the losses and the parameters' changes must agree with
    hand_tuned_flat's within `rtol` relative (in the norm, for each parameter), and the
    parameters must still be of `dtype`. Returns the implementations that could not run here,
    with the reasons; raises AssertionError naming the first disagreement."""
    dtype = np.dtype(dtype)
    made, skipped = {}, {}
    for name, factory in (factories or FACTORIES).items():
        try:
            made[name] = factory(batch, dtype, optimizer=optimizer)
        except BenchmarkUnavailable as exc:
            skipped[name] = str(exc)
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
            assert p.dtype == dtype, f"{where}: {pname} is {p.dtype}, not {dtype}"
            change, ref_change = p - p0, r - p0
            err = np.linalg.norm(change - ref_change) / np.linalg.norm(ref_change)
            assert err < rtol, f"{where}: update of {pname} differs by {err:.2e} relative"
    return skipped


def render_by_optimizer(optimizers: Sequence[str], calls: Mapping[str, Mapping[str, int]],
                        samples: Samples) -> str:
    """One table per optimizer from samples whose rows are named ``optimizer/row``, each with
    the ratios to that optimizer's own hand_tuned_flat and the NumPy calls per step of the
    rows that are NumPy (``calls[optimizer][row]``)."""
    parts = []
    for name in optimizers:
        prefix = f"{name}/"

        def own(rows: Mapping[str, object], prefix: str = prefix) -> dict:
            return {row.removeprefix(prefix): v for row, v in rows.items()
                    if row.startswith(prefix)}

        own_samples = Samples(own(samples), own(samples.skipped))
        rows = table(own_samples, baselines=("hand_tuned_flat",))
        parts.append(f"### {name}\n\n{with_calls(rows, calls[name])}")
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
    rows, calls = {}, {}
    for name in args.optimizer:
        reference_check(OPTIMIZERS[name])
        calls[name] = {row: FACTORIES[row](32, "float64", optimizer=OPTIMIZERS[name]).numpy_calls
                       for row in ("graphc", "hand_tuned_flat")}
        rows.update({f"{name}/{row}": partial(factory, optimizer=OPTIMIZERS[name])
                     for row, factory in FACTORIES.items()})
    tables_by_dtype_and_batch(rows, args.dtype, args.batch, repeats=args.repeats,
                              inner=lambda batch: args.inner, threads=args.threads,
                              render=partial(render_by_optimizer, args.optimizer, calls),
                              out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
