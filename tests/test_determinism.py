"""Training is deterministic: two ``graphc train`` processes with the same seed end with
bit-identical parameters, optimizer state and per-epoch losses. (That another seed gives
another run is checked in-process, in test_trainer.py.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from graphc.train import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "mlp_digits.py")


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
