"""One SGD training step of a LeNet-sized CNN: graphc's generated code against PyTorch eager.

The network: 1x28x28 images, conv 6@5x5, ReLU, max pool 2, conv 16@5x5, ReLU, max pool 2,
fully connected 256-120, ReLU, 120-84, ReLU, 84-10, softmax cross-entropy (mean over the
batch), one step of plain SGD with lr 0.01. Both implementations start from the same
parameters and minibatch (`make_problem`); each call of a step runs forward, backward and
update once and returns the loss.

PyTorch is not a dependency: where it does not import, its row is skipped and only graphc's
time is reported. Run from the repository root::

    python -m benchmarks.lenet_step            # batch 64, float32
    python -m benchmarks.lenet_step --quick    # a few rounds, to see that it runs
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from numpy.typing import DTypeLike

from benchmarks.harness import BenchmarkUnavailable, compare, machine_description, table

LEARNING_RATE = 0.01
#: (name, shape) of every parameter: conv filters (out, in, kh, kw), dense weights (in, out).
PARAM_SHAPES = (
    ("K1", (6, 1, 5, 5)), ("c1", (6,)), ("K2", (16, 6, 5, 5)), ("c2", (16,)),
    ("W3", (256, 120)), ("b3", (120,)), ("W4", (120, 84)), ("b4", (84,)),
    ("W5", (84, 10)), ("b5", (10,)),
)


@dataclass(frozen=True)
class Problem:
    """A minibatch (x: (batch, 1, 28, 28), labels: (batch,) int64) and He-initialised
    parameters with zero biases, by name."""

    x: np.ndarray
    labels: np.ndarray
    params: dict[str, np.ndarray]


def make_problem(batch: int, dtype: DTypeLike, seed: int = 0) -> Problem:
    """The same (batch, dtype, seed) always gives the same numbers, in new arrays."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in PARAM_SHAPES:
        fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))
        value = np.zeros(shape) if len(shape) == 1 else \
            rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        params[name] = value.astype(dtype)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(dtype)
    labels = rng.integers(0, 10, size=batch)
    return Problem(x, labels, params)


def make_graphc(batch: int, dtype: DTypeLike, seed: int = 0) -> Callable[[], float]:
    """The training step graphc compiles (forward, backward and SGD update in one function)."""
    import graphc as gc

    problem = make_problem(batch, dtype, seed)
    p = {name: gc.param(name, value.shape, init=value, dtype=dtype)
         for name, value in problem.params.items()}
    x = gc.input("x", ("batch", 1, 28, 28), dtype=dtype)
    labels = gc.input("labels", ("batch",), dtype="int64")
    h1 = gc.max_pool2d(gc.relu(gc.conv2d(x, p["K1"], p["c1"])))
    h2 = gc.max_pool2d(gc.relu(gc.conv2d(h1, p["K2"], p["c2"])))
    h3 = gc.relu(gc.flatten(h2) @ p["W3"] + p["b3"])
    h4 = gc.relu(h3 @ p["W4"] + p["b4"])
    loss = gc.softmax_cross_entropy(h4 @ p["W5"] + p["b5"], labels)
    program = gc.compile([loss], [x, labels], optimizer=gc.SGD(LEARNING_RATE))

    def step() -> float:
        return float(program(x=problem.x, labels=problem.labels)[0])

    return step


def make_torch_eager(batch: int, dtype: DTypeLike, seed: int = 0) -> Callable[[], float]:
    """PyTorch eager on the CPU, as its users write a step: backward(), then torch.optim.SGD."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as exc:
        raise BenchmarkUnavailable(f"torch does not import ({exc})") from exc

    problem = make_problem(batch, dtype, seed)
    x, labels = torch.from_numpy(problem.x), torch.from_numpy(problem.labels)
    p = {name: torch.from_numpy(value).requires_grad_() for name, value in problem.params.items()}
    optimizer = torch.optim.SGD(list(p.values()), lr=LEARNING_RATE)

    def step() -> float:
        h1 = F.max_pool2d(torch.relu(F.conv2d(x, p["K1"], p["c1"])), 2)
        h2 = F.max_pool2d(torch.relu(F.conv2d(h1, p["K2"], p["c2"])), 2)
        h3 = torch.relu(h2.flatten(1) @ p["W3"] + p["b3"])
        h4 = torch.relu(h3 @ p["W4"] + p["b4"])
        loss = F.cross_entropy(h4 @ p["W5"] + p["b5"], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


IMPLEMENTATIONS: dict[str, Callable[..., Callable[[], float]]] = {
    "graphc": make_graphc,
    "torch_eager": make_torch_eager,
}


def reference_check() -> str:
    """Check that the implementations that run agree on two float64 steps at batch 8."""
    losses = {}
    for name, factory in IMPLEMENTATIONS.items():
        try:
            step = factory(8, "float64")
        except BenchmarkUnavailable as exc:
            print(f"{name} skipped: {exc}", file=sys.stderr)
            continue
        losses[name] = [step(), step()]
    if len(losses) < 2:
        return f"only {', '.join(losses)} ran: nothing to compare"
    first = next(iter(losses.values()))
    for name, values in losses.items():
        np.testing.assert_allclose(values, first, rtol=1e-9, err_msg=name)
    return f"{', '.join(losses)} agree on two float64 steps at batch 8"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: check, time the implementations round-robin, print a table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lenet_step",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=15, help="rounds, one sample each")
    parser.add_argument("--inner", type=int, default=5, help="steps per sample")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit every thread pool to N threads (needs threadpoolctl)")
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds of 2 steps: a smoke run, not a measurement")
    args = parser.parse_args(argv)
    repeats, inner = (3, 2) if args.quick else (args.repeats, args.inner)

    print(f"Checked: {reference_check()}.", file=sys.stderr)
    factories = {name: partial(make, args.batch, args.dtype)
                 for name, make in IMPLEMENTATIONS.items()}
    samples = compare(factories, repeats=repeats, inner=inner, threads=args.threads)
    print(f"# LeNet training step, {args.dtype}, batch {args.batch}\n\n"
          f"{repeats} rounds of {inner} steps per implementation, alternating.\n\n"
          f"{machine_description()}\n\n{table(samples, baselines=('torch_eager',))}\n")
    graphc_ms = 1e3 * float(np.median(samples["graphc"]))
    line = f"graphc: {graphc_ms:.2f} ms per step"
    if "torch_eager" in samples:
        ratio = float(np.median(np.asarray(samples["graphc"]) / samples["torch_eager"]))
        line += f", {ratio:.2f} x PyTorch eager"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
