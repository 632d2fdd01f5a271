"""Compile time of the whole pipeline for deep MLPs: 10, 100 and 1000 layers.

The target: 100 layers under 1 s, 1000 layers under 5 s, growing no worse than linearly.
Run: python -m benchmarks.compile_time [--layers 10 100 1000] [--width 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import graphc as gc


def deep_mlp(layers: int, width: int):
    """The loss of a ``layers``-deep ReLU MLP and its inputs."""
    x = gc.input("x", ("batch", width))
    labels = gc.input("labels", ("batch",), dtype="int64")
    h = x
    for i in range(layers):
        W = gc.param(f"W{i}", (width, width), seed=i)
        b = gc.param(f"b{i}", (width,), init="zeros")
        h = gc.relu(h @ W + b)
    return gc.softmax_cross_entropy(h, labels), [x, labels]


def time_compile(layers: int, width: int, optimize: int) -> float:
    """Seconds to build nothing but the compiled training step (graph declared beforehand)."""
    loss, inputs = deep_mlp(layers, width)
    start = time.perf_counter()
    gc.compile([loss], inputs, optimizer=gc.SGD(0.01), optimize=optimize)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--optimize", type=int, default=2)
    args = p.parse_args()
    print("| layers | median compile seconds | per layer (ms) |")
    print("|---:|---:|---:|")
    for n in args.layers:
        secs = statistics.median(time_compile(n, args.width, args.optimize)
                                 for _ in range(args.repeats))
        print(f"| {n} | {secs:.3f} | {1000 * secs / n:.2f} |")


if __name__ == "__main__":
    main()
