"""graphc's generated training step on the workload of `benchmarks.mlp_baselines`.

``make_graphc`` compiles the MLP 784-256-256-10 (ReLU, softmax cross-entropy, SGD lr 0.01) at
optimize=2 (planned buffers, in-place ufuncs); ``make_graphc_O3`` at optimize=3 (updates of
the large weights folded into their gradient products by BLAS gemm); ``make_graphc_O1`` at
optimize=1 (one plain NumPy statement per node), so the table shows what each level buys.
All start from `make_problem`'s parameters and minibatch, so `reference_step_check` can check
them against the baselines.

Run ``python -m benchmarks.mlp_graphc`` for the table with ratios to hand_tuned.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial

import numpy as np
from numpy.typing import DTypeLike

from benchmarks.harness import compare, machine_description, table
from benchmarks.mlp_baselines import (
    IMPLEMENTATIONS,
    LAYER_SIZES,
    LEARNING_RATE,
    NOT_TRAINING,
    PARAM_NAMES,
    TrainingStep,
    default_inner,
    make_problem,
    reference_step_check,
)


def _make(batch: int, dtype: DTypeLike, seed: int, optimize: int) -> TrainingStep:
    """The compiled step: the graph, its parameters initialised from `make_problem`."""
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
    feeds = {"x": problem.x, "labels": problem.labels}

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
    parts = [machine_description()]
    print(parts[0], flush=True)
    for dtype in args.dtype:
        for batch in args.batch:
            factories = {n: partial(f, batch, dtype) for n, f in chosen.items()}
            samples = compare(factories, repeats=args.repeats, inner=default_inner(batch),
                              threads=args.threads)
            parts.append(f"## {dtype}, batch {batch}\n\n{table(samples)}")
            print(f"\n{parts[-1]}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n\n".join(parts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
