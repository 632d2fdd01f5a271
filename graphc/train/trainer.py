"""The trainer: shuffled minibatches over epochs, validation, early stopping, progress, a
history to plot, and checkpoints from which a killed run resumes exactly where it stopped.

Building one::

    trainer = gc.Trainer(loss, [x, labels], gc.Adam(lr=0.003), scores=scores)
    trainer.fit(train, val, epochs=10, batch_size=32)   # a Dataset each (graphc.data)
    trainer.plot("curves.png")                          # needs graphc[plot]

Parameters live in the graph's nodes, so a second Trainer on the same graph starts from
what the first one trained; it warns so, and ``reinit=True`` (or ``gc.reinit(loss)``)
puts back the values the parameters had before any Trainer took them.

Exactly means bit for bit: a checkpoint holds every array the training step owns (parameters
and optimizer state), the data-order generator's state from before the current epoch's
permutation was drawn, and how many minibatches of that epoch are done. Resuming restores the
arrays and the generator, draws the same permutation again and skips the finished minibatches,
so the run goes on with the same arithmetic on the same data as if it had never stopped.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from graphc.compiler import compile
from graphc.data.dataset import Dataset
from graphc.errors import CheckpointError
from graphc.feeds import leaf_name
from graphc.files import atomic_write, write_npz
from graphc.ir.graph import topological_order
from graphc.ir.node import Node
from graphc.losses import accuracy
from graphc.train import checkpoint
from graphc.train.checkpoint import CheckpointWarning
from graphc.train.console import LOGGER
from graphc.train.history import EpochResult, History
from graphc.train.optimizers import Optimizer
from graphc.train.plot import plot_history

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = LOGGER.getChild("train")


class TrainerWarning(UserWarning):
    """A Trainer starts from parameters another Trainer trained."""


#: The value every parameter had when a Trainer first took it (the declared one, unless
#: changed by hand before), by node id: what ``reinit`` puts back.
_INITIAL: dict[int, np.ndarray] = {}
#: The Trainer (by serial number) that last trained each parameter, by node id.
_TRAINED_BY: dict[int, int] = {}
_serials = itertools.count(1)


def reinit(outputs: Node | Sequence[Node]) -> list[Node]:
    """Put the parameters ``outputs`` depend on back to the values they had when a Trainer
    first took them (their declared initial values) and forget who trained them; returns
    the parameters reset. Parameters no Trainer has taken are left as they are."""
    nodes = [outputs] if isinstance(outputs, Node) else list(outputs)
    return _reset([n for n in topological_order(nodes) if n.op.name == "param"])


def _reset(params: Sequence[Node]) -> list[Node]:
    reset = [p for p in params if p.id in _INITIAL]
    for p in reset:
        p.array[...] = _INITIAL[p.id]
        _TRAINED_BY.pop(p.id, None)
    return reset


@dataclass
class _Progress:
    """Where a run stands: what a checkpoint's metadata holds besides the arrays, all that the
    resumed run needs to go on exactly as the uninterrupted one."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # minibatches of the current epoch completed
    global_step: int = 0
    #: The data-order generator before this epoch's draw (set as each epoch starts).
    rng_state: Mapping[str, Any] = field(default_factory=dict)
    epoch_losses: list[float] = field(default_factory=list)
    history: list[EpochResult] = field(default_factory=list)
    best_val_loss: float | None = None
    best_epoch: int | None = None
    epochs_since_best: int = 0
    stopped: bool = False  # by early stopping: a resumed run does not train on

    @classmethod
    def from_meta(cls, path: str, meta: dict[str, Any]) -> _Progress:
        """The progress a checkpoint's metadata records. CheckpointError names the first
        field that is missing or not of its kind, before anything of the run is changed."""
        values = {f.name: _meta_field(path, meta, f.name) for f in fields(cls)}
        values["history"] = [EpochResult(**r) for r in values["history"]]
        return cls(**values)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_EPOCH_FIELDS = {f.name for f in fields(EpochResult)}
#: Each metadata field a resumed run reads: a test of its value, and what the test wants.
_META_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epoch": (_count, "a count"),
    "batch": (_count, "a count"),
    "global_step": (_count, "a count"),
    "epochs_since_best": (_count, "a count"),
    "batch_size": (_count, "a count"),
    "train_size": (_count, "a count"),
    "rng_state": (lambda v: isinstance(v, dict), "a generator state (a JSON object)"),
    "epoch_losses": (lambda v: isinstance(v, list) and all(map(_number, v)), "a list of numbers"),
    "history": (lambda v: isinstance(v, list) and all(
        isinstance(r, dict) and r.keys() == _EPOCH_FIELDS for r in v),
        f"a list of epoch results with the fields {sorted(_EPOCH_FIELDS)}"),
    "best_val_loss": (lambda v: v is None or _number(v), "a number or null"),
    "best_epoch": (lambda v: v is None or _count(v), "a count or null"),
    "stopped": (lambda v: isinstance(v, bool), "true or false"),
}


def _meta_field(path: str, meta: dict[str, Any], name: str) -> Any:
    """The metadata field ``name``, checked to be of its kind; CheckpointError otherwise."""
    if name not in meta:
        raise CheckpointError(f"{path}: the checkpoint's metadata has no field {name!r}; was "
                              "it written by another program or version?")
    test, kind = _META_KINDS[name]
    if not test(meta[name]):
        raise CheckpointError(f"{path}: metadata field {name!r} should be {kind}, "
                              f"got {meta[name]!r:.80}")
    return meta[name]


@dataclass(frozen=True)
class _Checkpoints:
    """Where and how often a run checkpoints, and the data layout its checkpoints assume."""

    directory: str
    every: int | None
    keep: int
    batch_size: int
    train_size: int


class Trainer:
    """Trains the parameters of ``loss`` with ``optimizer`` on (features, labels) data.

    ``inputs`` are the features and labels input nodes, in the order a dataset's x and y
    feed them; ``scores`` is the node whose largest entry per row is the predicted class.
    The training step (forward, backward and update) is one generated function, with
    optimizer state of its own (fresh for every Trainer).

    The parameters are the graph's: a Trainer built on parameters another Trainer trained
    starts from their trained values, with a TrainerWarning; ``reinit=True`` first puts
    them back to the values they had before any Trainer took them (see ``reinit``).
    ``history`` holds every epoch's result and every step's loss, ``plot`` draws them.
    """

    def __init__(self, loss: Node, inputs: Sequence[Node], optimizer: Optimizer,
                 scores: Node | None = None, optimize: int = 2, *,
                 reinit: bool = False) -> None:
        self.loss = loss
        self.inputs = list(inputs)
        self.step = compile([loss], self.inputs, optimizer=optimizer, optimize=optimize)
        metrics = [loss] + ([accuracy(scores, self.inputs[1])] if scores is not None else [])
        self.evaluator = compile(metrics, self.inputs, optimize=optimize)
        #: Every array the training step owns (parameters, optimizer state), by generated name.
        self.owned = {self.step.names[n.id]: n for n in self.step.signature.owned}
        self.params = [n for n in self.step.signature.owned if n.op.name == "param"]
        self.history = History()
        self._best: dict[str, np.ndarray] = {}
        self._serial = next(_serials)
        for p in self.params:
            _INITIAL.setdefault(p.id, p.array.copy())
        if reinit:
            _reset(self.params)
        trained = [self.step.names[p.id] for p in self.params if p.id in _TRAINED_BY]
        if trained:
            warnings.warn(f"Trainer: parameters {', '.join(trained)} were trained by another "
                          "Trainer, and this one goes on from their trained values; "
                          "Trainer(..., reinit=True) or gc.reinit(loss) starts from their "
                          "initial values", TrainerWarning, stacklevel=2)

    def plot(self, path: str | os.PathLike | None = None) -> Figure:
        """Draw the history with matplotlib (``pip install 'graphc[plot]'``): the training
        loss of every step and each epoch's training and validation loss on the left, the
        validation accuracy on the right; write it to ``path`` (its extension picks the
        format: .png, .pdf, .svg) when given. Returns the matplotlib Figure, which a
        notebook shows."""
        return plot_history(self.history, path)

    def _feeds(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        return {leaf_name(self.inputs[0]): x, leaf_name(self.inputs[1]): y}

    def evaluate(self, data: Dataset, batch_size: int = 512) -> tuple[float, float | None]:
        """Mean loss and accuracy over a dataset (accuracy None without ``scores``)."""
        totals, n = np.zeros(2), 0
        for xb, yb in data.batches(batch_size, shuffle=False):
            values = self.evaluator(**self._feeds(xb, yb))
            totals[: len(values)] += np.array([float(v) for v in values]) * len(yb)
            n += len(yb)
        has_acc = len(self.evaluator.outputs) > 1
        return float(totals[0] / n), (float(totals[1] / n) if has_acc else None)

    def fit(self, train: Dataset, val: Dataset | None = None, epochs: int = 10,
            batch_size: int = 32, seed: int = 0, progress: bool = True, *,
            checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int | None = None,
            keep: int = 3, resume: bool = False,
            patience: int | None = None) -> list[EpochResult]:
        """Train for ``epochs`` passes of minibatches shuffled by a generator seeded with
        ``seed``. With ``progress``, a progress bar (tqdm: in a terminal or a notebook) and
        one line per epoch, logged at INFO to the ``graphc.train`` logger (see
        ``graphc.train.console``). Returns every epoch's result, including those a resumed
        run had done before it stopped; ``history`` also has every step's loss.

        With ``checkpoint_dir``, a checkpoint is written there at the end of every epoch and,
        with ``checkpoint_every=N``, after every N-th step; the newest ``keep`` that verify
        are kept (a damaged one is set aside as ``.corrupt``, see ``checkpoint.prune``). A
        checkpoint that cannot be written (full or read-only disk) raises CheckpointError and
        leaves the earlier ones. A fresh run (``resume=False``) first deletes the checkpoints
        of an earlier run there, with a warning. ``resume=True`` continues from the newest
        checkpoint that verifies, skipping corrupt ones with a warning (or starts afresh if
        there is none), and trains on until ``epochs`` epochs are done in all.

        ``patience=P`` (which needs ``val``) stops once the validation loss has not improved
        for P epochs, and at the end puts back the parameters of the epoch where it was best.
        """
        plan = _plan(train, val, batch_size, checkpoint_dir, checkpoint_every, keep, resume,
                     patience)
        rng = np.random.default_rng(seed)
        run = self._start(rng, plan, resume, progress)
        self.history.epochs = run.history
        for p in self.params:
            _TRAINED_BY[p.id] = self._serial
        n_batches = -(-len(train) // batch_size)
        self.history.steps_per_epoch = n_batches
        while run.epoch < epochs and not run.stopped:
            run.rng_state = rng.bit_generator.state
            start = time.perf_counter()
            with _bar(progress, f"epoch {run.epoch + 1}/{epochs}", n_batches, run.batch) as bar:
                for xb, yb in itertools.islice(train.batches(batch_size, rng), run.batch, None):
                    loss = float(self.step(**self._feeds(xb, yb))[0])
                    run.epoch_losses.append(loss)
                    run.batch += 1
                    run.global_step += 1
                    self.history.steps.append(run.global_step)
                    self.history.losses.append(loss)
                    bar.update()
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                    if (plan is not None and plan.every and run.global_step % plan.every == 0
                            and run.batch < n_batches):
                        self._checkpoint(plan, run)
            result = self._end_epoch(run, val, patience, time.perf_counter() - start)
            run.rng_state = rng.bit_generator.state
            log.log(logging.INFO if progress else logging.DEBUG, _epoch_line(result, epochs))
            if plan is not None:
                self._checkpoint(plan, run)
        if patience is not None and self._best:
            self._restore_best(run, progress)
        return list(run.history)

    def _start(self, rng: np.random.Generator, plan: _Checkpoints | None, resume: bool,
               progress: bool) -> _Progress:
        """A fresh run, or the run of the newest valid checkpoint with the generator set back."""
        self._best = {}
        if plan is None:
            return _Progress()
        checkpoint.ensure_directory(plan.directory)  # a bad directory fails now, not an epoch on
        if not resume:
            old = checkpoint.listing(plan.directory) + checkpoint.set_aside(plan.directory)
            if old:
                warnings.warn(f"starting afresh: deleting {len(old)} checkpoint(s) of an earlier "
                              f"run in {plan.directory} (resuming would continue it)",
                              CheckpointWarning, stacklevel=3)
                checkpoint.delete(old)
            return _Progress()
        level = logging.INFO if progress else logging.DEBUG
        ckpt = checkpoint.latest(plan.directory)
        if ckpt is None:
            log.log(level, f"no checkpoint in {plan.directory}; starting from the beginning")
            return _Progress()
        run = self._restore(ckpt, plan, rng)
        log.log(level, f"resuming from {ckpt.path} (step {run.global_step}): epoch "
                f"{run.epoch + 1}, minibatch {run.batch + 1}")
        return run

    def _restore(self, ckpt: checkpoint.Checkpoint, plan: _Checkpoints,
                 rng: np.random.Generator) -> _Progress:
        """Check that the checkpoint fits this model and data, then load it into the arrays
        and set the data-order generator back; a misfit changes nothing."""
        for key, here in (("batch_size", plan.batch_size), ("train_size", plan.train_size)):
            saved = _meta_field(ckpt.path, ckpt.meta, key)
            if saved != here:
                raise CheckpointError(f"{ckpt.path}: saved with {key} {saved}, "
                                      f"this run has {here}: resuming would not replay the "
                                      "same minibatches")
        for name, node in self.owned.items():
            saved = ckpt.arrays.get(name)
            if saved is None:
                raise CheckpointError(f"{ckpt.path}: no array {name!r}; is it a checkpoint of "
                                      "another model?")
            widened = node.op.name == "state" and np.can_cast(saved.dtype, node.dtype, "safe")
            if saved.shape != node.array.shape or saved.dtype != node.array.dtype and not widened:
                raise CheckpointError(f"{ckpt.path}: {name} is {saved.dtype} {saved.shape}, "
                                      f"the model's is {node.array.dtype} {node.array.shape}")
        run = _Progress.from_meta(ckpt.path, ckpt.meta)
        try:
            type(rng.bit_generator)().state = run.rng_state  # a scratch generator, to check
        except (TypeError, ValueError, KeyError) as err:
            raise CheckpointError(f"{ckpt.path}: metadata field 'rng_state' is not a state of "
                                  f"{type(rng.bit_generator).__name__} ({err})") from err
        for name, node in self.owned.items():
            node.array[...] = ckpt.arrays[name]
        self._best = {name: ckpt.arrays[f"best:{name}"] for name in self._param_names()
                      if f"best:{name}" in ckpt.arrays}
        rng.bit_generator.state = run.rng_state
        return run

    def _checkpoint(self, plan: _Checkpoints, run: _Progress) -> None:
        arrays = {name: node.array for name, node in self.owned.items()}
        arrays.update({f"best:{name}": value for name, value in self._best.items()})
        meta = {**asdict(run), "batch_size": plan.batch_size, "train_size": plan.train_size}
        checkpoint.ensure_directory(plan.directory)  # deleted since the run started?
        path = os.path.join(plan.directory, checkpoint.file_name(run.global_step))
        checkpoint.write(path, arrays, meta)
        checkpoint.prune(plan.directory, plan.keep)

    def _end_epoch(self, run: _Progress, val: Dataset | None, patience: int | None,
                   seconds: float) -> EpochResult:
        """Validate, record the epoch, and track the best validation loss for early stopping."""
        val_loss, val_acc = self.evaluate(val) if val is not None else (None, None)
        result = EpochResult(run.epoch + 1, float(np.mean(run.epoch_losses)), val_loss,
                             val_acc, seconds)
        run.history.append(result)
        run.epoch, run.batch, run.epoch_losses = run.epoch + 1, 0, []
        if val_loss is None:
            return result
        if not np.isnan(val_loss) and (run.best_val_loss is None or val_loss < run.best_val_loss):
            run.best_val_loss, run.best_epoch, run.epochs_since_best = val_loss, run.epoch, 0
            self._best = {self.step.names[p.id]: p.array.copy() for p in self.params}
        else:
            run.epochs_since_best += 1
            run.stopped = patience is not None and run.epochs_since_best >= patience
        return result

    def _restore_best(self, run: _Progress, progress: bool) -> None:
        for p in self.params:
            p.array[...] = self._best[self.step.names[p.id]]
        stopped = "stopped early; " if run.stopped else ""
        log.log(logging.INFO if progress else logging.DEBUG,
                f"{stopped}restored the parameters of epoch {run.best_epoch} "
                f"(val_loss {run.best_val_loss:.4f})")

    def _param_names(self) -> list[str]:
        return [self.step.names[p.id] for p in self.params]

    def save(self, path: str | os.PathLike) -> None:
        """Write the parameters, by generated name, to an .npz file atomically (a crash
        leaves the old file); CheckpointError names the file if it cannot be written."""
        path = os.fspath(path)
        arrays = {self.step.names[p.id]: p.array for p in self.params}
        try:
            atomic_write(path, lambda f: write_npz(f, arrays))
        except OSError as err:
            raise checkpoint.os_error(path, "write the parameters", err) from err

    def load(self, path: str | os.PathLike) -> None:
        """Read parameters saved by ``save`` into the live arrays, checking names and shapes."""
        with np.load(os.fspath(path)) as saved:
            for name, p in zip(self._param_names(), self.params):
                if name not in saved.files:
                    raise CheckpointError(f"{path}: no array for parameter {name!r}")
                if saved[name].shape != p.array.shape:
                    raise CheckpointError(f"{path}: {name} has shape {saved[name].shape}, "
                                          f"the model's is {p.array.shape}")
            for name, p in zip(self._param_names(), self.params):
                p.array[...] = saved[name]


def _plan(train: Dataset, val: Dataset | None, batch_size: int, directory: str | os.PathLike | None,
          every: int | None, keep: int, resume: bool,
          patience: int | None) -> _Checkpoints | None:
    """Check fit's arguments; the checkpoint plan, or None without a checkpoint directory."""
    for name, value in (("checkpoint_every", every), ("patience", patience)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ValueError(f"fit: {name} must be a positive number or None, got {value!r}")
    if keep < 1:
        raise ValueError(f"fit: keep must be at least 1, got {keep!r}")
    if patience is not None and val is None:
        raise ValueError("fit: early stopping (patience) needs validation data (val)")
    if directory is None:
        if resume or every is not None:
            raise ValueError("fit: resume and checkpoint_every need a checkpoint_dir")
        return None
    return _Checkpoints(os.fspath(directory), every, keep, batch_size, len(train))


def _bar(progress: bool, title: str, total: int, done: int):
    """A progress bar over one epoch's minibatches: tqdm's in a notebook (a widget, where
    ipywidgets is installed) or on a terminal's stderr; a bar that draws nothing when
    ``progress`` is off or stderr is a file or a pipe (a log should not fill with bars)."""
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm as notebook_tqdm

    quiet = not progress or (not issubclass(tqdm, notebook_tqdm) and not sys.stderr.isatty())
    return tqdm(total=total, initial=done, desc=title, unit="batch", leave=False,
                disable=quiet, file=sys.stderr, dynamic_ncols=True)


def _epoch_line(r: EpochResult, epochs: int) -> str:
    line = f"epoch {r.epoch}/{epochs}  loss {r.loss:.4f}"
    if r.val_loss is not None:
        line += f"  val_loss {r.val_loss:.4f}"
    if r.val_accuracy is not None:
        line += f"  val_acc {r.val_accuracy:.4f}"
    return line + f"  ({r.seconds:.2f}s)"
