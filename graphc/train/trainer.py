"""The trainer: shuffled minibatches over epochs, validation, progress, parameters saved and
loaded atomically."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graphc.backend.program import atomic_write
from graphc.compiler import compile
from graphc.errors import CheckpointError
from graphc.ir.node import Node
from graphc.losses import accuracy


@dataclass
class EpochResult:
    epoch: int
    loss: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float


class Trainer:
    """Trains the parameters of ``loss`` with ``optimizer`` on (features, labels) data.

    ``inputs`` are the features and labels input nodes, in the order a dataset's x and y
    feed them; ``scores`` is the node whose largest entry per row is the predicted class.
    The training step (forward, backward and update) is one generated function.
    """

    def __init__(self, loss: Node, inputs: Sequence[Node], optimizer, scores: Node | None = None,
                 optimize: int = 2) -> None:
        self.loss = loss
        self.inputs = list(inputs)
        self.step = compile([loss], self.inputs, optimizer=optimizer, optimize=optimize)
        metrics = [loss] + ([accuracy(scores, self.inputs[1])] if scores is not None else [])
        self.evaluator = compile(metrics, self.inputs, optimize=optimize)
        self.params = [n for n in self.step.signature.owned if n.op.name == "param"]

    def _feeds(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        return {self.inputs[0].name: x, self.inputs[1].name: y}

    def evaluate(self, data, batch_size: int = 512) -> tuple[float, float | None]:
        """Mean loss and accuracy over a dataset (accuracy None without ``scores``)."""
        totals, n = np.zeros(2), 0
        for xb, yb in data.batches(batch_size, shuffle=False):
            values = self.evaluator(**self._feeds(xb, yb))
            totals[: len(values)] += np.array([float(v) for v in values]) * len(yb)
            n += len(yb)
        has_acc = len(self.evaluator.outputs) > 1
        return float(totals[0] / n), (float(totals[1] / n) if has_acc else None)

    def fit(self, train, val=None, epochs: int = 10, batch_size: int = 32, seed: int = 0,
            progress: bool = True) -> list[EpochResult]:
        """Run ``epochs`` passes of shuffled minibatches; report each epoch."""
        rng = np.random.default_rng(seed)
        history = []
        for epoch in range(1, epochs + 1):
            start, losses = time.perf_counter(), []
            n_batches = -(-len(train) // batch_size)
            for i, (xb, yb) in enumerate(train.batches(batch_size, rng)):
                losses.append(float(self.step(**self._feeds(xb, yb))[0]))
                if progress and sys.stderr.isatty():
                    _bar(epoch, epochs, i + 1, n_batches, losses[-1])
            val_loss, val_acc = self.evaluate(val) if val is not None else (None, None)
            result = EpochResult(epoch, float(np.mean(losses)), val_loss, val_acc,
                                 time.perf_counter() - start)
            history.append(result)
            if progress:
                _report(result, epochs)
        return history

    def save(self, path: str | os.PathLike) -> None:
        """Write the parameters to an .npz file atomically (a crash leaves the old file)."""
        arrays = {p.name: p.value for p in self.params}
        atomic_write(os.fspath(path), lambda f: np.savez(f, **arrays))

    def load(self, path: str | os.PathLike) -> None:
        """Read parameters saved by ``save`` into the live arrays, checking names and shapes."""
        with np.load(os.fspath(path)) as saved:
            for p in self.params:
                if p.name not in saved.files:
                    raise CheckpointError(f"{path}: no array for parameter {p.name!r}")
                if saved[p.name].shape != p.value.shape:
                    raise CheckpointError(f"{path}: {p.name} has shape {saved[p.name].shape}, "
                                          f"the model's is {p.value.shape}")
            for p in self.params:
                p.value[...] = saved[p.name]


def _bar(epoch: int, epochs: int, i: int, n: int, loss: float) -> None:
    filled = int(20 * i / n)
    sys.stderr.write(f"\repoch {epoch}/{epochs} [{'#' * filled}{'.' * (20 - filled)}] "
                     f"{i}/{n} loss {loss:.4f}")
    sys.stderr.flush()


def _report(r: EpochResult, epochs: int) -> None:
    line = f"epoch {r.epoch}/{epochs}  loss {r.loss:.4f}"
    if r.val_loss is not None:
        line += f"  val_loss {r.val_loss:.4f}"
    if r.val_accuracy is not None:
        line += f"  val_acc {r.val_accuracy:.4f}"
    line += f"  ({r.seconds:.2f}s)"
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 70 + "\r")
    print(line, flush=True)
