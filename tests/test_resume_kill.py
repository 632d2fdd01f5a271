"""A training process killed with SIGKILL mid-run and resumed in a new process ends with
exactly (bitwise) the parameters and optimizer state of a run that was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

from graphc.train import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "mlp_digits.py")

#: Trains the digits MLP for 3 epochs (34 steps each) with a checkpoint every 5 steps, then
#: writes every array the training step owns to OUT. DELAY seconds of sleep before each
#: minibatch give the test time to kill it mid-run; they change no arithmetic.
SCRIPT = '''
import sys, time
import numpy as np
from graphc.example import load_example
from graphc.train.trainer import Trainer

example_path, directory, out, mode, delay = sys.argv[1:]
example = load_example(example_path)
train, val, _ = example.dataset().split((0.6, 0.2, 0.2), seed=example.seed)


class Throttled:
    def __init__(self, data, delay):
        self.data, self.delay = data, delay

    def __len__(self):
        return len(self.data)

    def batches(self, batch_size, rng):
        return (time.sleep(self.delay) or b for b in self.data.batches(batch_size, rng))


trainer = Trainer(example.outputs[0], example.input_nodes, example.optimizer,
                  scores=example.scores)
trainer.fit(Throttled(train, float(delay)), val, epochs=3, batch_size=example.batch_size,
            seed=example.seed, checkpoint_dir=directory, checkpoint_every=5,
            resume=mode == "resume")
np.savez(out, **{name: node.value for name, node in trainer.owned.items()})
'''


def start(tmp_path, name: str, mode: str, delay: float) -> subprocess.Popen:
    args = [sys.executable, str(tmp_path / "train.py"), DIGITS, str(tmp_path / name),
            str(tmp_path / f"{name}.npz"), mode, str(delay)]
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


def test_sigkill_then_resume_matches_the_uninterrupted_run_bitwise(tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    straight = start(tmp_path, "straight", "fresh", 0.0)
    victim = start(tmp_path, "victim", "fresh", 0.05)
    deadline = time.monotonic() + 120
    while not checkpoint.listing(tmp_path / "victim"):
        assert victim.poll() is None, victim.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.002)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "victim.npz").exists()
    killed_at = checkpoint.latest(tmp_path / "victim").meta
    assert killed_at["epoch"] == 0 and 0 < killed_at["batch"] < 34, "killed mid-epoch 1"

    out = finish(start(tmp_path, "victim", "resume", 0.0))
    assert f"(step {killed_at['global_step']}): epoch 1, minibatch {killed_at['batch'] + 1}" in out
    finish(straight)
    with np.load(tmp_path / "victim.npz") as resumed, np.load(tmp_path / "straight.npz") as want:
        assert sorted(resumed.files) == sorted(want.files)
        assert {"W1", "b2", "m_W1", "v_b2", "t"} <= set(want.files)
        for name in want.files:
            assert resumed[name].tobytes() == want[name].tobytes(), name
            assert np.array_equal(resumed[name], want[name]), name
