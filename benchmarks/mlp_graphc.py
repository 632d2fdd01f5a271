"""graphc's generated training step on the workload of `benchmarks.mlp_baselines`.

``make_graphc`` compiles the MLP 784-256-256-10 (ReLU, softmax cross-entropy, SGD lr 0.01) at
optimize=2 (planned buffers, in-place ufuncs); ``make_graphc_O3`` at optimize=3 (updates of
the large weights folded into their gradient products by BLAS gemm); ``make_graphc_O1`` at
optimize=1 (one plain NumPy statement per node), so the table shows what each level buys.
All start from `make_problem`'s parameters and minibatch, so `reference_step_check` can check
them against the baselines.

Run ``python -m benchmarks.mlp_graphc`` for the table with ratios to hand_tuned. Each table
also gives the NumPy calls per step (`numpy_calls`): graphc's as ``Program.report`` counts
them in its generated ``main``, the hand-tuned step's and the GEMM floor's counted the same way
from their source, so a reader sees where graphc stands in calls as well as in time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import DTypeLike

from benchmarks.harness import (
    source_numpy_calls,
    table,
    tables_by_dtype_and_batch,
    with_calls,
)
from benchmarks.mlp_baselines import (
    IMPLEMENTATIONS,
    LAYER_SIZES,
    LEARNING_RATE,
    NOT_TRAINING,
    PARAM_NAMES,
    TrainingStep,
    default_inner,
    make_gemm_floor,
    make_hand_tuned,
    make_problem,
    reference_step_check,
)


def _compile(batch: int, dtype: DTypeLike, seed: int, optimize: int):  # -> gc.Program
    """The compiled program and its feeds: the graph, its parameters initialised from
    `make_problem`."""
    import graphc as gc

    problem = make_problem(batch, dtype, seed)
    dtype = np.dtype(dtype)
    x = gc.input("x", ("batch", LAYER_SIZES[0]), dtype=dtype)
    labels = gc.input("labels", ("batch",), dtype="int64")
    params = [gc.param(name, value.shape, init=value, dtype=dtype)
              for name, value in zip(PARAM_NAMES, problem.params, strict=True)]
    W1, b1, W2, b2, W3, b3 = params
    h1 = gc.relu(x @ W1 + b1)
    h2 = gc.relu(h1 @ W2 + b2)
    loss = gc.softmax_cross_entropy(h2 @ W3 + b3, labels)
    prog = gc.compile([loss], [x, labels], optimizer=gc.SGD(LEARNING_RATE), optimize=optimize)
    return prog, {"x": problem.x, "labels": problem.labels}


def _make(batch: int, dtype: DTypeLike, seed: int, optimize: int) -> TrainingStep:
    """The compiled step, called with `make_problem`'s minibatch."""
    prog, feeds = _compile(batch, dtype, seed, optimize)

    def step() -> float:
        return float(prog(**feeds)[0])

    return TrainingStep(step, lambda: [prog.params[name] for name in PARAM_NAMES])


def make_graphc(batch: int, dtype: DTypeLike, seed: int = 0) -> TrainingStep:
    """graphc at optimize=2: the generated step with its memory plan."""
    return _make(batch, dtype, seed, optimize=2)


def make_graphc_O3(batch: int, dtype: DTypeLike, seed: int = 0) -> TrainingStep:  # noqa: N802
    """graphc at optimize=3: optimize=2 with the large SGD updates folded into their
    weight-gradient products (one BLAS gemm call with beta=1 each)."""
    return _make(batch, dtype, seed, optimize=3)


def make_graphc_O1(batch: int, dtype: DTypeLike, seed: int = 0) -> TrainingStep:  # noqa: N802
    """graphc at optimize=1: one plain NumPy statement per node, no buffers."""
    return _make(batch, dtype, seed, optimize=1)


#: graphc's implementations by their optimize level.
LEVELS = {"graphc": 2, "graphc_O3": 3, "graphc_O1": 1}

#: The NumPy steps whose calls are counted from their source: the factory and its inner
#: function that is the step.
COUNTED_FROM_SOURCE: dict[str, tuple[Callable[..., object], str]] = {
    "hand_tuned": (make_hand_tuned, "step"), "gemm_floor": (make_gemm_floor, "products")}


def numpy_calls(names: Sequence[str], batch: int = 32, dtype: DTypeLike = "float32"
                ) -> dict[str, int]:
    """NumPy calls per step of each of ``names`` that is graphc's or counted from source:
    graphc's from ``prog.report()`` (its last stage, the code the program runs)."""
    calls = {}
    for name in names:
        if name in LEVELS:
            prog, _ = _compile(batch, dtype, 0, LEVELS[name])
            calls[name] = int(prog.report(batch=batch).rows[-1][2])
        elif name in COUNTED_FROM_SOURCE:
            calls[name] = source_numpy_calls(*COUNTED_FROM_SOURCE[name],
                                             loop_times=len(PARAM_NAMES))
    return calls


#: Every implementation timed in the same run: graphc's three levels beside each baseline
#: (those whose package is missing are skipped, and the table says so).
FACTORIES = {"graphc": make_graphc, "graphc_O3": make_graphc_O3, "graphc_O1": make_graphc_O1,
             **IMPLEMENTATIONS}


def main(argv: Sequence[str] | None = None) -> int:
    """Check graphc's steps against hand_tuned, then print one table per dtype and batch."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mlp_graphc",
                                     description="Time graphc's generated MLP step.")
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128, 1024])
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"],
                        choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", help="also write the tables (Markdown) to this file")
    parser.add_argument("--only", nargs="+", choices=list(FACTORIES), metavar="NAME",
                        help=f"time only these implementations (of {', '.join(FACTORIES)})")
    args = parser.parse_args(argv)
    chosen = {n: f for n, f in FACTORIES.items() if args.only is None or n in args.only}
    reference_step_check(factories={n: f for n, f in chosen.items() if n not in NOT_TRAINING})
    calls = numpy_calls(list(chosen))
    tables_by_dtype_and_batch(chosen, args.dtype, args.batch, repeats=args.repeats,
                              inner=default_inner, threads=args.threads,
                              render=lambda samples: with_calls(table(samples), calls),
                              out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
