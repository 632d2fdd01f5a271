"""Compiling and training are deterministic across processes.

Compiling: the same graph gives the same generated code and the same graph (backward nodes
included) in every process, whatever PYTHONHASHSEED (which orders sets of strings and of
SymPy objects) and whatever was compiled before in the process (which fills SymPy's caches
and graphc's). Training: two ``graphc train`` processes with the same seed end with
bit-identical parameters, optimizer state and per-epoch losses. (That another seed gives
another run is checked in-process, in test_trainer.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence

import graphc as gc
from graphc.cli.main import build_program
from graphc.example import load_example
from graphc.ir.node import Node
from graphc.passes.pipeline import LEVELS
from graphc.train import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
DIGITS = os.path.join(ROOT, "examples", "mlp_digits.py")

#: Examples compiled in each process: the lectures' scalar graphs and losses (softmax
#: cross-entropy, hinge), with their gradients, and the digits MLP and CNN trained with Adam.
WORKLOADS = ("add_mul", "sigmoid_neuron", "hinge_loss", "softmax_loss", "mlp_digits",
             "cnn_digits")


def graph_text(nodes: Sequence[Node]) -> str:
    """A graph in topological order, one node a line: its role, op label and the positions
    of its inputs (node ids differ between processes; positions do not)."""
    position = {n.id: i for i, n in enumerate(nodes)}
    return "\n".join(f"{n.role} {n.label} {[position[x.id] for x in n.inputs]}" for n in nodes)


def compiled(names: Sequence[str]) -> dict[str, str]:
    """What ``graphc emit`` compiles each example to, at every optimize level, in the order
    given: the generated source, then the graph as built (forward and backward) and the
    graph after the passes; and the figure (Graphviz source) of an example with values."""
    out = {}
    for name in names:
        example = load_example(os.path.join(ROOT, "examples", f"{name}.py"))
        if example.feeds:
            out[f"{name} figure"] = gc.render(example.outputs, example.feeds).source
        for level in LEVELS:
            program = build_program(example, optimize=level)
            out[f"{name} -O {level}"] = "\n\n".join(
                [program.source] + [graph_text(program.stages[i].graph.nodes()) for i in (0, -1)])
    return out


def compile_in_process(names: Sequence[str], hash_seed: int) -> subprocess.Popen:
    """``compiled(names)`` in a fresh Python with the given PYTHONHASHSEED, as JSON on
    stdout."""
    code = ("import json, sys; from test_determinism import compiled; "
            "json.dump(compiled(sys.argv[1:]), sys.stdout)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, TESTS]),
           "PYTHONHASHSEED": str(hash_seed)}
    return subprocess.Popen([sys.executable, "-c", code, *names], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_compiling_gives_the_same_code_under_any_hash_seed_and_compile_order():
    """Three processes, each with its own hash seed and order of compiles (so each example
    meets caches filled by other examples, or empty ones)."""
    orders = {0: WORKLOADS, 1: WORKLOADS[::-1], 2: WORKLOADS[1::2] + WORKLOADS[::2]}
    runs = {seed: compile_in_process(names, seed) for seed, names in orders.items()}
    results = {}
    for seed, process in runs.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results[seed] = json.loads(out)
    first = results[0]
    assert {"add_mul figure", "sigmoid_neuron -O 0", "cnn_digits -O 3"} <= first.keys()
    for seed, other in results.items():
        assert other.keys() == first.keys()
        for key, text in first.items():
            assert other[key] == text, f"{key}: PYTHONHASHSEED={seed} in order {orders[seed]}"


def train(tmp_path, name: str, seed: int) -> subprocess.Popen:
    args = [sys.executable, "-m", "graphc.cli.main", "train", DIGITS, "--epochs", "3",
            "--seed", str(seed), "--checkpoint-dir", name]
    return subprocess.Popen(args, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ROOT},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def losses(output: str) -> list[str]:
    """The printed epoch lines without their timings."""
    return [re.sub(r"\(\d+\.\d+s\)", "", line) for line in output.splitlines()
            if line.startswith("epoch ")]


def test_same_seed_gives_bit_identical_training_in_separate_processes(tmp_path):
    runs = {name: train(tmp_path, name, seed=11) for name in ("first", "second")}
    out = {}
    for name, process in runs.items():
        out[name], err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert len(losses(out["first"])) == 3
    assert losses(out["first"]) == losses(out["second"])
    first, second = (checkpoint.latest(tmp_path / name) for name in runs)
    assert {"W1", "b1", "W2", "b2", "m_W1", "v_W1", "t"} <= first.arrays.keys()
    assert first.arrays.keys() == second.arrays.keys()
    for name, array in first.arrays.items():
        assert array.tobytes() == second.arrays[name].tobytes(), name
    assert first.meta["rng_state"] == second.meta["rng_state"]
