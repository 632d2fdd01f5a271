"""graphc's generated training steps at two commits, timed against each other in one process.

Did a change make the generated code slower? Each workload (an SGD MLP 784-256-256-10, the
digits MLP with Adam, LeNet with SGD) is compiled by the graphc of each commit (a temporary
``git worktree`` of the older one, imported through PYTHONPATH in a subprocess) and saved as
a standalone module (``prog.save``: numpy only); this process then loads both modules of a
workload and calls their ``main`` in alternation, one thread, and reports medians and the
median of the per-round ratios. Only the generated code is compared: ``prog(**feeds)``, whose
feed checks belong to the library rather than to the code, is timed by the other benchmarks.

    python -m benchmarks.compare_commits a6ce331            # that commit against the tree
    python -m benchmarks.compare_commits a6ce331 --rounds 41
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from types import ModuleType

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: name -> (input shape after the batch, dtype, batch sizes and steps per sample at each).
WORKLOADS: dict[str, tuple[tuple[int, ...], str, dict[int, int]]] = {
    "mlp_sgd_float32": ((784,), "float32", {32: 100, 128: 40}),
    "mlp_sgd_float64": ((784,), "float64", {32: 100}),
    "digits_adam_float64": ((64,), "float64", {32: 400, 128: 200}),
    "digits_adam_float32": ((64,), "float32", {32: 400}),
    "lenet_sgd_float32": ((1, 28, 28), "float32", {64: 10}),
}


def build(directory: str, tag: str) -> None:
    """Compile every workload with the graphc this process imports and save it as
    ``<directory>/<tag>_<workload>.py``. Uses only API that both commits have."""
    import graphc as gc

    rng = np.random.default_rng(0)

    def param(name: str, shape: tuple[int, ...], dtype: str, fan_in: int | None) -> gc.Node:
        init = 0.0 if fan_in is None else rng.standard_normal(shape) * np.sqrt(2 / fan_in)
        return gc.param(name, shape, init=init, dtype=dtype)

    def mlp(sizes: Sequence[int], dtype: str) -> tuple[gc.Node, gc.Node, gc.Node]:
        x = gc.input("x", ("batch", sizes[0]), dtype=dtype)
        h = x
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            h = h @ param(f"W{i}", (a, b), dtype, a) + param(f"b{i}", (b,), dtype, None)
            h = gc.relu(h) if i < len(sizes) - 1 else h
        return x, h, gc.input("labels", ("batch",), dtype="int64")

    def lenet(dtype: str) -> tuple[gc.Node, gc.Node, gc.Node]:
        x = gc.input("x", ("batch", 1, 28, 28), dtype=dtype)
        h = x
        for i, (k, c) in enumerate(((6, 1), (16, 6)), start=1):
            kernel = param(f"K{i}", (k, c, 5, 5), dtype, c * 25)
            h = gc.max_pool2d(gc.relu(gc.conv2d(h, kernel, param(f"c{i}", (k,), dtype, None))))
        h = gc.flatten(h)
        for i, (a, b) in enumerate(((256, 120), (120, 84), (84, 10)), start=3):
            h = h @ param(f"W{i}", (a, b), dtype, a) + param(f"b{i}", (b,), dtype, None)
            h = gc.relu(h) if i < 5 else h
        return x, h, gc.input("labels", ("batch",), dtype="int64")

    steps = {
        "mlp_sgd_float32": (mlp((784, 256, 256, 10), "float32"), gc.SGD(0.01)),
        "mlp_sgd_float64": (mlp((784, 256, 256, 10), "float64"), gc.SGD(0.01)),
        "digits_adam_float64": (mlp((64, 128, 10), "float64"), gc.Adam(0.003)),
        "digits_adam_float32": (mlp((64, 128, 10), "float32"), gc.Adam(0.003)),
        "lenet_sgd_float32": (lenet("float32"), gc.SGD(0.01)),
    }
    for name, ((x, scores, labels), optimizer) in steps.items():
        loss = gc.softmax_cross_entropy(scores, labels)
        program = gc.compile([loss], [x, labels], optimizer=optimizer)
        program.save(os.path.join(directory, f"{tag}_{name}.py"))


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(directory: str, rounds: int) -> list[str]:
    """Rows of medians: each workload's two modules alternated (the order flipped every
    round), one sample per round of each."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(1)
    rows = ["| step | batch | old µs | new µs | new / old |", "|---|---:|---:|---:|---:|"]
    with threadpool_limits(1):
        for name, (shape, dtype, batches) in WORKLOADS.items():
            modules = {t: _load(os.path.join(directory, f"{t}_{name}.py")) for t in ("old", "new")}
            for batch, inner in batches.items():
                feeds = {"x": rng.standard_normal((batch, *shape)).astype(dtype),
                         "labels": rng.integers(0, 10, batch)}
                samples: dict[str, list[float]] = {"old": [], "new": []}
                for r in range(rounds):
                    for tag in (("old", "new") if r % 2 else ("new", "old")):
                        main = modules[tag].main
                        main(**feeds)
                        start = time.perf_counter()
                        for _ in range(inner):
                            main(**feeds)
                        samples[tag].append((time.perf_counter() - start) / inner * 1e6)
                old, new = (np.array(samples[t]) for t in ("old", "new"))
                rows.append(f"| {name} | {batch} | {np.median(old):,.0f} | {np.median(new):,.0f} "
                            f"| {np.median(new / old):.3f} |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the commit to compare the working tree against")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--build", metavar="TAG", help=argparse.SUPPRESS)  # the subprocess
    parser.add_argument("--into", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build:
        build(args.into, args.build)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        tree = os.path.join(scratch, "old")
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", tree, args.old],
                       check=True)
        try:
            for tag, where in (("old", tree), ("new", ROOT)):
                env = {**os.environ, "PYTHONPATH": where}
                subprocess.run([sys.executable, os.path.abspath(__file__), args.old,
                                "--build", tag, "--into", scratch], check=True, env=env,
                               cwd=scratch)
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], check=True)
        print(f"old: {args.old}; new: the working tree at {ROOT}")
        print("\n".join(compare(scratch, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
