"""The trainer: training converges, early stopping stops and puts the best parameters back,
the L2 penalty acts as weight decay, parameters save and load by generated name, and bad
arguments to fit are refused before any training.

``make_trainer`` and ``blobs`` are shared with the checkpoint tests: every call declares a
fresh graph with fixed parameter seeds, so two trainers start from identical arrays.
"""

from __future__ import annotations

import io
import logging
import sys
import warnings

import numpy as np
import pytest

import graphc as gc
import graphc.train
from graphc.data import Dataset
from graphc.errors import CheckpointError, GraphcError
from graphc.train.trainer import Trainer, TrainerWarning


def blobs(n: int, seed: int, shuffled_labels: bool = False) -> Dataset:
    """Three Gaussian clusters in 8-D, easy to separate; ``shuffled_labels`` makes the labels
    noise, so that the validation loss on it rises as a model fits real data."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.random.default_rng(99).standard_normal((3, 8)) * 2.0
    x = centres[y] + rng.standard_normal((n, 8))
    if shuffled_labels:
        y = rng.permutation(y)
    return Dataset(x, y, 3, "blobs")


def make_trainer(l2: float = 0.0, optimizer: gc.Optimizer | None = None) -> Trainer:
    """A fresh 8-16-3 MLP (same initial parameters at every call), trained with Adam."""
    x = gc.input("x", ("batch", 8))
    labels = gc.input("labels", ("batch",), dtype="int64")
    W1 = gc.param("W1", (8, 16), init="he", seed=1)
    b1 = gc.param("b1", (16,), init="zeros")
    W2 = gc.param("W2", (16, 3), init="glorot", seed=2)
    b2 = gc.param("b2", (3,), init="zeros")
    scores = gc.relu(x @ W1 + b1) @ W2 + b2
    loss = gc.softmax_cross_entropy(scores, labels)
    if l2:
        loss = loss + gc.l2_penalty([W1, W2], l2)
    return Trainer(loss, [x, labels], optimizer or gc.Adam(lr=0.01), scores=scores)


def arrays(trainer: Trainer) -> dict[str, np.ndarray]:
    """Copies of every array the training step owns (parameters and optimizer state)."""
    return {name: node.value.copy() for name, node in trainer.owned.items()}


def test_fit_learns_and_reports_each_epoch(capsys):
    train, val = blobs(150, 0), blobs(60, 1)
    trainer = make_trainer()
    history = trainer.fit(train, val, epochs=4, batch_size=16, seed=3)
    assert [r.epoch for r in history] == [1, 2, 3, 4]
    assert history[-1].loss < history[0].loss
    assert history[-1].val_accuracy > 0.9
    out = capsys.readouterr().out
    assert "epoch 1/4  loss" in out and "epoch 4/4  loss" in out
    loss, acc = trainer.evaluate(val)
    assert loss == pytest.approx(history[-1].val_loss) and acc == history[-1].val_accuracy


def test_the_seed_alone_decides_the_minibatch_order():
    data = blobs(64, 0)
    runs = []
    for seed in (5, 5, 6):
        trainer = make_trainer()
        trainer.fit(data, epochs=2, batch_size=16, seed=seed, progress=False)
        runs.append(arrays(trainer))
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not np.array_equal(runs[0]["W1"], runs[2]["W1"])


def test_owned_arrays_are_named_as_in_generated_code():
    trainer = make_trainer()
    names = set(trainer.owned)
    assert {"W1", "b1", "W2", "b2", "m_W1", "v_W1", "t"} <= names
    flat = next(f for f in trainer.step.signature.flats if f.name == "flat_params")
    assert [x.name for x in flat.inputs] == ["W1", "b1", "W2", "b2"]
    assert "flat_params -= " in trainer.step.source  # all four at once


def test_early_stopping_stops_and_restores_the_best_parameters(capsys):
    """Labels of the validation set are noise, so its loss is lowest early and then rises."""
    train, noise = blobs(150, 0), blobs(60, 1, shuffled_labels=True)
    trainer = make_trainer()
    history = trainer.fit(train, noise, epochs=30, batch_size=16, seed=0, patience=2)
    losses = [r.val_loss for r in history]
    best = int(np.argmin(losses))
    assert len(history) == best + 1 + 2 < 30
    assert trainer.evaluate(noise)[0] == losses[best]
    assert f"stopped early; restored the parameters of epoch {best + 1}" in capsys.readouterr().out


def test_a_nan_validation_loss_never_counts_as_the_best(capsys):
    train, val = blobs(150, 0), blobs(60, 1)
    broken = Dataset(np.full_like(val.x, np.nan), val.y, 3, "nan")
    trainer = make_trainer()
    with np.errstate(invalid="ignore"):
        history = trainer.fit(train, broken, epochs=10, batch_size=16, patience=2)
    assert len(history) == 2 and all(np.isnan(r.val_loss) for r in history)
    assert "restored" not in capsys.readouterr().out


def test_without_patience_training_runs_all_epochs_and_keeps_the_last_parameters():
    train, noise = blobs(150, 0), blobs(60, 1, shuffled_labels=True)
    trainer = make_trainer()
    history = trainer.fit(train, noise, epochs=6, batch_size=16, progress=False)
    assert len(history) == 6
    assert trainer.evaluate(noise)[0] == history[-1].val_loss


def test_l2_penalty_is_weight_decay_in_the_update():
    """One SGD step with lam/2 |W|^2 added moves W by exactly -lr * lam * W more than without."""
    data = blobs(32, 0)
    lr, lam = 0.1, 0.5
    plain, decayed = make_trainer(optimizer=gc.SGD(lr)), make_trainer(lam, gc.SGD(lr))
    w1 = plain.owned["W1"].value.copy()
    b1 = plain.owned["b1"].value.copy()
    for trainer in (plain, decayed):
        trainer.fit(data, epochs=1, batch_size=32, progress=False)
    np.testing.assert_allclose(decayed.owned["W1"].value - plain.owned["W1"].value,
                               -lr * lam * w1, rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(decayed.owned["b1"].value - b1, plain.owned["b1"].value - b1)


def test_l2_penalty_shrinks_the_weights_over_training():
    train = blobs(150, 0)
    norms = []
    for lam in (0.0, 0.05):
        trainer = make_trainer(lam)
        history = trainer.fit(train, epochs=5, batch_size=16, progress=False)
        assert history[-1].loss < history[0].loss
        norms.append(np.linalg.norm(trainer.owned["W1"].value))
    assert norms[1] < 0.8 * norms[0]


def test_save_and_load_round_trip(tmp_path):
    trainer = make_trainer()
    trainer.fit(blobs(64, 0), epochs=1, batch_size=16, progress=False)
    trainer.save(tmp_path / "params.npz")
    other = make_trainer()
    other.load(tmp_path / "params.npz")
    for p, q in zip(trainer.params, other.params):
        np.testing.assert_array_equal(p.value, q.value)


def test_save_keeps_parameters_that_share_a_name_apart(tmp_path):
    """Two parameters named "W" are saved under their distinct generated names (W, W_2)."""
    x = gc.input("x", ("batch", 2))
    labels = gc.input("labels", ("batch",), dtype="int64")
    first, second = gc.param("W", (2, 2), seed=1), gc.param("W", (2, 3), seed=2)
    trainer = Trainer(gc.softmax_cross_entropy(x @ first @ second, labels), [x, labels],
                      gc.SGD(0.1))
    trainer.save(tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz") as saved:
        assert sorted(saved.files) == ["W", "W_2"]
    first.value[...] = 0
    trainer.load(tmp_path / "p.npz")
    assert first.value.any() and first.value.shape == (2, 2)


def test_load_names_the_missing_or_misshaped_parameter(tmp_path):
    trainer = make_trainer()
    np.savez(tmp_path / "missing.npz", W1=trainer.owned["W1"].value)
    with pytest.raises(CheckpointError, match="no array for parameter 'b1'"):
        trainer.load(tmp_path / "missing.npz")
    good = {p.name: p.value for p in trainer.params}
    np.savez(tmp_path / "shape.npz", **{**good, "b2": np.zeros(4)})
    with pytest.raises(CheckpointError, match=r"b2 has shape \(4,\), the model's is \(3,\)"):
        trainer.load(tmp_path / "shape.npz")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"keep": 0, "checkpoint_dir": "d"}, "keep must be at least 1"),
    ({"checkpoint_every": 0, "checkpoint_dir": "d"}, "checkpoint_every must be a positive"),
    ({"checkpoint_every": 5}, "need a checkpoint_dir"),
    ({"resume": True}, "need a checkpoint_dir"),
    ({"patience": 0, "val": "v"}, "patience must be a positive"),
    ({"patience": 2}, "needs validation data"),
])
def test_fit_refuses_bad_arguments_before_training(kwargs, message):
    trainer = make_trainer()
    before = arrays(trainer)
    data = blobs(16, 0)
    if kwargs.get("val") == "v":
        kwargs["val"] = data
    with pytest.raises(ValueError, match=message):
        trainer.fit(data, epochs=1, progress=False, **kwargs)
    assert all(np.array_equal(before[k], v) for k, v in arrays(trainer).items())


# --- the API: names, history, fresh parameters, progress, logging, plots ---------------------
def test_the_trainer_has_one_class_under_three_names():
    assert gc.Trainer is graphc.train.Trainer is Trainer
    assert gc.reinit is graphc.train.reinit


def test_history_keeps_every_step_and_every_epoch():
    trainer = make_trainer()
    epochs = trainer.fit(blobs(70, 0), blobs(20, 1), epochs=3, batch_size=16, progress=False)
    history = trainer.history
    assert history.epochs == epochs and len(epochs) == 3
    assert history.steps == list(range(1, 3 * 5 + 1)) and history.steps_per_epoch == 5
    assert len(history.losses) == 15
    for k, r in enumerate(epochs):  # each epoch's loss is the mean of its steps' losses
        assert r.loss == pytest.approx(np.mean(history.losses[5 * k:5 * k + 5]))


def test_a_second_trainer_on_trained_parameters_warns_and_reinit_starts_afresh():
    first = make_trainer()
    initial = arrays(first)
    first.fit(blobs(64, 0), epochs=1, batch_size=16, progress=False)
    trained = arrays(first)["W1"]
    loss, inputs = first.loss, first.inputs
    with pytest.warns(TrainerWarning, match="parameters W1, b1, W2, b2 were trained by another"):
        second = Trainer(loss, inputs, gc.Adam(lr=0.01))
    np.testing.assert_array_equal(second.owned["W1"].value, trained)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh = Trainer(loss, inputs, gc.Adam(lr=0.01), reinit=True)
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_array_equal(fresh.owned[name].value, initial[name])
    fresh.fit(blobs(64, 0), epochs=1, batch_size=16, progress=False)
    assert [p.name for p in gc.reinit(loss)] == ["W1", "b1", "W2", "b2"]
    np.testing.assert_array_equal(fresh.owned["W1"].value, initial["W1"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(loss, inputs, gc.SGD(0.1))  # after gc.reinit, nobody has trained them


def test_epoch_lines_are_log_records_of_graphc_train():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("graphc")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        make_trainer().fit(blobs(32, 0), epochs=2, batch_size=16)
        make_trainer().fit(blobs(32, 0), epochs=1, batch_size=16, progress=False)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    infos = [r for r in records if r.levelno == logging.INFO]
    assert [r.name for r in infos] == ["graphc.train"] * 2
    assert infos[0].getMessage().startswith("epoch 1/2  loss")
    assert [r.levelno for r in records[2:]] == [logging.DEBUG]  # progress=False: quiet


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar_and_a_pipe_does_not(monkeypatch, capsys):
    make_trainer().fit(blobs(32, 0), epochs=1, batch_size=16)
    assert capsys.readouterr().err == ""   # stderr is captured: not a terminal
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    make_trainer().fit(blobs(32, 0), epochs=1, batch_size=16)
    assert "epoch 1/1" in terminal.getvalue() and "/2 [" in terminal.getvalue()


def test_plot_draws_loss_and_accuracy(tmp_path):
    pytest.importorskip("matplotlib")
    trainer = make_trainer()
    trainer.fit(blobs(64, 0), blobs(20, 1), epochs=2, batch_size=16, progress=False)
    figure = trainer.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
    losses, accuracy = figure.axes
    assert [len(line.get_xdata()) for line in losses.lines] == [8, 2, 2]
    assert list(accuracy.lines[0].get_ydata()) == [r.val_accuracy for r in trainer.history.epochs]


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    trainer = make_trainer()
    trainer.fit(blobs(32, 0), epochs=1, batch_size=16, progress=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(GraphcError, match=r"pip install 'graphc\[plot\]'"):
        trainer.plot()
