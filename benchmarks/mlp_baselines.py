"""Baselines for one SGD training step of an MLP, to measure graphc's generated code against.

The workload (see shared/performance-notes.md): an MLP 784-256-256-10 with ReLU, softmax
cross-entropy on integer labels (mean over the batch), one step of plain SGD with lr 0.01.

Each implementation is a factory ``make_<name>(batch, dtype, seed=0)`` that draws the parameters
(He initialisation) and one fixed minibatch from ``np.random.default_rng(seed)`` through
`make_problem`, so every implementation starts from the same numbers, and returns a zero-argument
step: each call runs forward, backward and update once and returns the loss. Training steps are
`TrainingStep` objects, whose `params` show the parameters as they are now.

Run ``python -m benchmarks.mlp_baselines --help`` for the command line.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from benchmarks.harness import BenchmarkUnavailable, compare, machine_description, table

LAYER_SIZES = (784, 256, 256, 10)
LEARNING_RATE = 0.01
PARAM_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")

#: The signature every implementation's factory has: (batch, dtype, seed) -> step.
Factory = Callable[[int, DTypeLike, int], Callable[[], float]]


@dataclass(frozen=True)
class Problem:
    """What a step starts from: a minibatch and freshly initialised parameters.

    `x` is (batch, 784), `labels` is (batch,) int64 in [0, 10), and `params` holds W1, b1, W2,
    b2, W3, b3 with each weight laid out (fan_in, fan_out), so a layer computes ``h @ W + b``.
    """

    x: np.ndarray
    labels: np.ndarray
    params: tuple[np.ndarray, ...]


def make_problem(batch: int, dtype: DTypeLike, seed: int = 0) -> Problem:
    """Draw He-initialised parameters (zero biases), then a standard normal minibatch and labels.

    The same (batch, dtype, seed) always gives the same numbers, in new arrays.
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    params: list[np.ndarray] = []
    for fan_in, fan_out in zip(LAYER_SIZES[:-1], LAYER_SIZES[1:], strict=True):
        weight = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
        params += [weight.astype(dtype), np.zeros(fan_out, dtype)]
    x = rng.standard_normal((batch, LAYER_SIZES[0])).astype(dtype)
    labels = rng.integers(0, LAYER_SIZES[-1], size=batch)
    return Problem(x, labels, tuple(params))


class TrainingStep:
    """One SGD step: call it to train once on the minibatch; it returns the loss before the update.

    `params` reads the parameters [W1, b1, W2, b2, W3, b3] as NumPy arrays, as they are now.
    """

    __slots__ = ("_step", "_params")

    def __init__(self, step: Callable[[], float], params: Callable[[], list[np.ndarray]]) -> None:
        self._step = step
        self._params = params

    def __call__(self) -> float:
        return self._step()

    @property
    def params(self) -> list[np.ndarray]:
        """The current parameters W1, b1, W2, b2, W3, b3."""
        return self._params()


def make_hand_tuned(batch: int, dtype: DTypeLike, seed: int = 0) -> TrainingStep:
    """The fastest NumPy step we know how to write by hand: what graphc should emit.

    Every buffer is allocated here, once; the step writes into them with ``out=`` and in-place
    operators, so it allocates nothing large. Transposed products read ``a.T`` views, which BLAS
    takes without a copy. ReLU compares against a preallocated zeros array (faster than a Python
    scalar in NumPy 2.4) and relu' is read off the forward output. The logits are laid out
    (10, batch), which makes the per-sample reductions over the 10 classes fast. The
    softmax-cross-entropy gradient is fused, ``(p - onehot) / B``, and computed in place with lr
    folded into it, so every gradient already carries the factor lr and each update is one
    ``np.subtract(W, dW, out=W)``. Bias gradients are sums over the batch, taken as products
    with a vector of ones, which BLAS does two to three times faster than ``np.sum``.
    """
    problem = make_problem(batch, dtype, seed)
    x, labels = problem.x, problem.labels
    W1, b1, W2, b2, W3, b3 = params = problem.params
    dW1, db1, dW2, db2, dW3, db3 = grads = tuple(np.empty_like(p) for p in params)
    h1 = np.empty((batch, LAYER_SIZES[1]), x.dtype)
    h2 = np.empty((batch, LAYER_SIZES[2]), x.dtype)
    dh1, dh2 = np.empty_like(h1), np.empty_like(h2)
    zeros1, zeros2 = np.zeros_like(h1), np.zeros_like(h2)
    active1, active2 = np.empty(h1.shape, bool), np.empty(h2.shape, bool)
    s = np.empty((LAYER_SIZES[3], batch), x.dtype)  # logits, then lr * dloss/dlogits
    col_max, col_sum = np.empty(batch, x.dtype), np.empty(batch, x.dtype)
    b3_col = b3[:, None]  # a view: b3 as a column, to add to s
    rows, ones = np.arange(batch), np.ones(batch, x.dtype)
    seed_scale = x.dtype.type(LEARNING_RATE / batch)

    def step() -> float:
        # forward
        np.matmul(x, W1, out=h1)
        np.add(h1, b1, out=h1)
        np.maximum(h1, zeros1, out=h1)
        np.matmul(h1, W2, out=h2)
        np.add(h2, b2, out=h2)
        np.maximum(h2, zeros2, out=h2)
        np.matmul(W3.T, h2.T, out=s)  # (10, B)
        np.add(s, b3_col, out=s)
        # softmax cross-entropy, stabilised: loss = mean(logsumexp(s) - s[label])
        np.max(s, axis=0, out=col_max)
        np.subtract(s, col_max, out=s)
        loss = -s[labels, rows].sum()
        np.exp(s, out=s)
        np.sum(s, axis=0, out=col_sum)
        loss += np.log(col_sum).sum()
        # backward, seeded with lr * dloss/ds = lr * (softmax(s) - onehot(labels)) / B
        np.divide(seed_scale, col_sum, out=col_sum)
        np.multiply(s, col_sum, out=s)
        s[labels, rows] -= seed_scale
        np.matmul(h2.T, s.T, out=dW3)
        np.matmul(s, ones, out=db3)  # row sums, as a product: faster than np.sum
        np.matmul(s.T, W3.T, out=dh2)
        np.greater(h2, zeros2, out=active2)  # relu' from the forward output
        np.multiply(dh2, active2, out=dh2)
        np.matmul(h1.T, dh2, out=dW2)
        np.matmul(ones, dh2, out=db2)  # column sums
        np.matmul(dh2, W2.T, out=dh1)
        np.greater(h1, zeros1, out=active1)
        np.multiply(dh1, active1, out=dh1)
        np.matmul(x.T, dh1, out=dW1)
        np.matmul(ones, dh1, out=db1)
        # update: the gradients already carry lr
        for param, grad in zip(params, grads, strict=True):
            np.subtract(param, grad, out=param)
        return float(loss) / batch

    return TrainingStep(step, lambda: list(params))


def make_textbook(batch: int, dtype: DTypeLike, seed: int = 0) -> TrainingStep:
    """The NumPy step a student writes from the equations: new arrays for every intermediate."""
    problem = make_problem(batch, dtype, seed)
    x, labels = problem.x, problem.labels
    W1, b1, W2, b2, W3, b3 = params = problem.params
    rows = np.arange(batch)

    def step() -> float:
        z1 = x @ W1 + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W2 + b2
        h2 = np.maximum(z2, 0)
        logits = h2 @ W3 + b3
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -log_probs[rows, labels].mean()

        d_logits = np.exp(log_probs)
        d_logits[rows, labels] -= 1
        d_logits /= batch
        dW3 = h2.T @ d_logits
        db3 = d_logits.sum(axis=0)
        dz2 = (d_logits @ W3.T) * (z2 > 0)
        dW2 = h1.T @ dz2
        db2 = dz2.sum(axis=0)
        dz1 = (dz2 @ W2.T) * (z1 > 0)
        dW1 = x.T @ dz1
        db1 = dz1.sum(axis=0)

        for param, grad in zip(params, (dW1, db1, dW2, db2, dW3, db3), strict=True):
            param -= LEARNING_RATE * grad
        return float(loss)

    return TrainingStep(step, lambda: list(params))


def make_gemm_floor(batch: int, dtype: DTypeLike, seed: int = 0) -> Callable[[], float]:
    """Only the step's 8 matrix products, as `make_hand_tuned` calls them: no NumPy step is faster.

    Three forward products and five backward ones (dW3, dh2, dW2, dh1, dW1), with the same
    shapes, layouts and preallocated outputs as the hand-tuned step. It trains nothing, has no
    parameters to show, and returns NaN.
    """
    problem = make_problem(batch, dtype, seed)
    x = problem.x
    W1, _, W2, _, W3, _ = problem.params
    dW1, dW2, dW3 = np.empty_like(W1), np.empty_like(W2), np.empty_like(W3)
    h1 = np.empty((batch, LAYER_SIZES[1]), x.dtype)
    h2 = np.empty((batch, LAYER_SIZES[2]), x.dtype)
    dh1, dh2 = np.empty_like(h1), np.empty_like(h2)
    s = np.empty((LAYER_SIZES[3], batch), x.dtype)

    def products() -> float:
        np.matmul(x, W1, out=h1)
        np.matmul(h1, W2, out=h2)
        np.matmul(W3.T, h2.T, out=s)
        np.matmul(h2.T, s.T, out=dW3)
        np.matmul(s.T, W3.T, out=dh2)
        np.matmul(h1.T, dh2, out=dW2)
        np.matmul(dh2, W2.T, out=dh1)
        np.matmul(x.T, dh1, out=dW1)
        return math.nan

    return products


def make_autograd(batch: int, dtype: DTypeLike, seed: int = 0) -> TrainingStep:
    """HIPS autograd: the loss written with autograd.numpy, differentiated by value_and_grad."""
    try:
        import autograd.numpy as anp
        from autograd import value_and_grad
    except ImportError as exc:
        raise BenchmarkUnavailable(f"autograd does not import ({exc})") from exc

    problem = make_problem(batch, dtype, seed)
    x, labels = problem.x, problem.labels
    params = list(problem.params)
    rows = np.arange(batch)

    def loss_of(params: list[np.ndarray]) -> float:
        W1, b1, W2, b2, W3, b3 = params
        h1 = anp.maximum(x @ W1 + b1, 0.0)
        h2 = anp.maximum(h1 @ W2 + b2, 0.0)
        logits = h2 @ W3 + b3
        shifted = logits - anp.max(logits, axis=1, keepdims=True)
        log_probs = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
        return -anp.mean(log_probs[rows, labels])

    loss_and_grads = value_and_grad(loss_of)

    def step() -> float:
        loss, grads = loss_and_grads(params)
        for param, grad in zip(params, grads, strict=True):
            param -= LEARNING_RATE * grad
        return float(loss)

    return TrainingStep(step, lambda: list(params))


def make_torch_eager(batch: int, dtype: DTypeLike, seed: int = 0) -> TrainingStep:
    """PyTorch eager on the CPU, as its users write a step: backward(), then torch.optim.SGD.

    The tensors share memory with NumPy arrays, so `params` is free. The number of threads is
    PyTorch's default unless the harness limits it.
    """
    try:
        import torch
    except ImportError as exc:
        raise BenchmarkUnavailable(f"torch does not import ({exc})") from exc

    problem = make_problem(batch, dtype, seed)
    x, labels = torch.from_numpy(problem.x), torch.from_numpy(problem.labels)
    params = [torch.from_numpy(p).requires_grad_() for p in problem.params]
    optimizer = torch.optim.SGD(params, lr=LEARNING_RATE)

    def step() -> float:
        W1, b1, W2, b2, W3, b3 = params
        h1 = torch.relu(x @ W1 + b1)
        h2 = torch.relu(h1 @ W2 + b2)
        loss = torch.nn.functional.cross_entropy(h2 @ W3 + b3, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return TrainingStep(step, lambda: [p.detach().numpy() for p in params])


def make_jax_jit(batch: int, dtype: DTypeLike, seed: int = 0) -> TrainingStep:
    """JAX on the CPU with the whole step (value_and_grad and update) under one jax.jit.

    The old parameters are donated to the step, so XLA may update them in place. float64 needs
    JAX's x64 mode, which this factory switches on for the whole process when asked for float64.
    """
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as exc:
        raise BenchmarkUnavailable(f"jax does not import ({exc})") from exc

    if np.dtype(dtype) == np.float64:
        jax.config.update("jax_enable_x64", True)
    problem = make_problem(batch, dtype, seed)
    x, labels = jnp.asarray(problem.x), jnp.asarray(problem.labels.astype(np.int32))
    state = [jnp.asarray(p) for p in problem.params]

    def loss_of(params: list, x: jax.Array, labels: jax.Array) -> jax.Array:
        W1, b1, W2, b2, W3, b3 = params
        h1 = jax.nn.relu(x @ W1 + b1)
        h2 = jax.nn.relu(h1 @ W2 + b2)
        log_probs = jax.nn.log_softmax(h2 @ W3 + b3)
        return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))

    @partial(jax.jit, donate_argnums=0)
    def train_step(params: list, x: jax.Array, labels: jax.Array) -> tuple[list, jax.Array]:
        loss, grads = jax.value_and_grad(loss_of)(params, x, labels)
        return [p - LEARNING_RATE * g for p, g in zip(params, grads, strict=True)], loss

    def step() -> float:
        state[:], loss = train_step(state, x, labels)
        return float(loss)  # waits for the step: one XLA computation makes loss and parameters

    return TrainingStep(step, lambda: [np.array(p, copy=True) for p in state])


#: Every implementation by name, in the order the command line builds them. To benchmark
#: another implementation (graphc's generated step, say), add one entry: a factory with the
#: same signature, returning a `TrainingStep` so that `reference_step_check` checks it too.
IMPLEMENTATIONS: dict[str, Factory] = {
    "hand_tuned": make_hand_tuned,
    "textbook": make_textbook,
    "gemm_floor": make_gemm_floor,
    "autograd": make_autograd,
    "torch_eager": make_torch_eager,
    "jax_jit": make_jax_jit,
}

#: The implementations that do not train, and so are left out of `reference_step_check`.
NOT_TRAINING = frozenset({"gemm_floor"})


def reference_step_check(
    batch: int = 8,
    seed: int = 0,
    rtol: float = 1e-6,
    factories: Mapping[str, Factory] | None = None,
) -> dict[str, float]:
    """Check that the implementations compute the same training step, in float64.

    Each implementation (by default every one in `IMPLEMENTATIONS` that trains and can run here)
    takes one step from the same seed. Its loss must match the first one's within `rtol`
    relative, and so must the change it made to each parameter array (in the norm): a stricter
    test than comparing the updated parameters. Returns the loss of each implementation that
    ran; raises AssertionError naming the first disagreement.
    """
    if factories is None:
        factories = {n: f for n, f in IMPLEMENTATIONS.items() if n not in NOT_TRAINING}
    initial = make_problem(batch, np.float64, seed).params
    losses: dict[str, float] = {}
    updates: dict[str, list[np.ndarray]] = {}
    for name, factory in factories.items():
        try:
            step = factory(batch, np.float64, seed)
        except BenchmarkUnavailable:
            continue
        losses[name] = step()
        updates[name] = [np.asarray(p) - p0 for p, p0 in zip(step.params, initial, strict=True)]

    reference = next(iter(losses), None)
    for name in losses:
        if abs(losses[name] - losses[reference]) > rtol * abs(losses[reference]):
            raise AssertionError(
                f"{name}: loss {losses[name]!r} differs from {reference}'s {losses[reference]!r}"
            )
        for param, update, expected in zip(
            PARAM_NAMES, updates[name], updates[reference], strict=True
        ):
            error = float(np.linalg.norm(update - expected))
            if error > rtol * float(np.linalg.norm(expected)):
                raise AssertionError(
                    f"{name}: the update of {param} differs from {reference}'s by {error:.3g}"
                    f" (norm {float(np.linalg.norm(expected)):.3g})"
                )
    return losses


def default_inner(batch: int) -> int:
    """Steps per timing sample: about 64 steps at batch 32, so a sample lasts some 30 ms."""
    return max(1, 2048 // batch)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: check the implementations agree, then benchmark them and print the tables."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mlp_baselines",
        description="Time one SGD step of an MLP 784-256-256-10 in several implementations.",
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128, 1024])
    parser.add_argument(
        "--dtype", nargs="+", default=["float32", "float64"], choices=["float32", "float64"]
    )
    parser.add_argument(
        "--impl",
        nargs="+",
        default=list(IMPLEMENTATIONS),
        choices=list(IMPLEMENTATIONS),
        help="implementations to time",
    )
    parser.add_argument("--repeats", type=int, default=15, help="rounds, one sample each")
    parser.add_argument(
        "--inner",
        type=int,
        default=None,
        help="steps per sample (default: 2048 // batch, at least 1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit every thread pool to N threads pinned to N CPUs "
        "(needs threadpoolctl; default: each library's own)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)

    losses = reference_step_check()
    print(f"Checked: {', '.join(losses)} agree on one float64 step at batch 8.", file=sys.stderr)

    arguments = shlex.join(sys.argv[1:] if argv is None else argv)
    threads = f"{args.threads}, pinned" if args.threads else "each library's default"
    header = (
        "# MLP training-step benchmarks\n\n"
        "One SGD step (forward, backward, update with lr 0.01) of an MLP 784-256-256-10 with\n"
        "ReLU and softmax cross-entropy. Microseconds per step are medians over rounds; ratios\n"
        "are medians of the per-round ratios, measured in the same run (benchmarks/README.md).\n\n"
        f"Command: `python -m benchmarks.mlp_baselines {arguments}` (threads: {threads})\n\n"
        f"{machine_description()}\n"
    )
    print(header, flush=True)
    sections = [header]
    for dtype in args.dtype:
        for batch in args.batch:
            inner = args.inner or default_inner(batch)
            factories = {name: partial(IMPLEMENTATIONS[name], batch, dtype) for name in args.impl}
            samples = compare(factories, repeats=args.repeats, inner=inner, threads=args.threads)
            section = (
                f"## {dtype}, batch {batch}\n\n"
                f"{args.repeats} rounds of {inner} steps per implementation.\n\n"
                f"{table(samples)}\n"
            )
            print(section, flush=True)
            sections.append(section)

    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(sections), encoding="utf-8")
        print(f"Wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
