"""Checkpoints: the file format and its checksum, damaged files detected and skipped, keeping
the last K, and resuming in-process bit for bit from any checkpoint, mid-epoch included,
through ``Trainer.fit`` and through ``graphc train --resume``.

(A real SIGKILL of a training process is in test_resume_kill.py.)
"""

from __future__ import annotations

import os
import shutil
import zipfile

import numpy as np
import pytest
from test_trainer import arrays, blobs, make_trainer

from graphc.cli.main import main
from graphc.errors import CheckpointError
from graphc.train import checkpoint
from graphc.train.checkpoint import CheckpointWarning

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "mlp_digits.py")
#: 150 rows in minibatches of 16: 10 per epoch, the last one short.
FIT = dict(epochs=3, batch_size=16, seed=7, progress=False)


@pytest.fixture(scope="module")
def data():
    return blobs(150, 0), blobs(60, 1)


@pytest.fixture(scope="module")
def reference(data):
    """The uninterrupted run: its final arrays and its history."""
    trainer = make_trainer()
    history = trainer.fit(*data, **FIT)
    return arrays(trainer), history


@pytest.fixture(scope="module")
def series(data, tmp_path_factory):
    """Every checkpoint of a run that checkpoints every 4 steps (keep=100 keeps them all)."""
    directory = tmp_path_factory.mktemp("series")
    make_trainer().fit(*data, checkpoint_dir=directory, checkpoint_every=4, keep=100, **FIT)
    return checkpoint.listing(directory)


def assert_same_run(trainer, history, reference) -> None:
    """Bitwise the same arrays, and the same per-epoch losses, as the reference run."""
    want, want_history = reference
    got = arrays(trainer)
    assert got.keys() == want.keys()
    for name in want:
        assert np.array_equal(got[name], want[name]), name
        assert got[name].tobytes() == want[name].tobytes(), name
    strip = [(r.epoch, r.loss, r.val_loss, r.val_accuracy) for r in history]
    assert strip == [(r.epoch, r.loss, r.val_loss, r.val_accuracy) for r in want_history]


def copy_up_to(paths: list[str], last: str, directory) -> None:
    """A checkpoint directory as a run killed right after writing ``last`` leaves it."""
    os.makedirs(directory, exist_ok=True)
    for path in paths[: paths.index(last) + 1]:
        shutil.copy(path, directory)


# --- the file format -----------------------------------------------------------------------------
def test_write_read_round_trip(tmp_path):
    arrays_in = {"W": np.arange(6.0).reshape(2, 3), "t": np.array(3.0), "n": np.arange(3)}
    meta = {"epoch": 2, "rng_state": {"state": 2**100 + 1}, "losses": [0.1, float("nan")]}
    checkpoint.write(tmp_path / "c.npz", arrays_in, meta)
    ckpt = checkpoint.read(tmp_path / "c.npz")
    assert ckpt.arrays.keys() == arrays_in.keys()
    for k, v in arrays_in.items():
        assert ckpt.arrays[k].dtype == v.dtype and np.array_equal(ckpt.arrays[k], v)
    assert ckpt.meta["rng_state"] == {"state": 2**100 + 1}
    assert ckpt.meta["epoch"] == 2 and np.isnan(ckpt.meta["losses"][1])
    assert ckpt.meta["format"] == checkpoint.FORMAT
    with zipfile.ZipFile(tmp_path / "c.npz") as z:
        assert {"graphc:meta.npy", "graphc:sha256.npy"} <= set(z.namelist())


def test_reserved_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        checkpoint.write(tmp_path / "c.npz", {checkpoint.META_KEY: np.zeros(1)}, {})


def test_digest_depends_on_names_dtypes_shapes_and_bytes():
    base = {"a": np.zeros((2, 3))}
    variants = [{"b": np.zeros((2, 3))}, {"a": np.zeros((3, 2))}, {"a": np.zeros((2, 3), "f4")},
                {"a": np.eye(2, 3)}, {"a": np.zeros((2, 3)), "b": np.zeros(0)}]
    digests = {checkpoint.digest(v) for v in [base, *variants]}
    assert len(digests) == 1 + len(variants)


def test_a_changed_array_fails_the_checksum(tmp_path):
    """A valid zip whose contents were changed after the checksum was taken."""
    checkpoint.write(tmp_path / "c.npz", {"W": np.ones(4)}, {"epoch": 1})
    with np.load(tmp_path / "c.npz") as npz:
        entries = {k: npz[k] for k in npz.files}
    entries["W"][2] = 1.0000000000000002
    np.savez(tmp_path / "c.npz", **entries)
    with pytest.raises(CheckpointError, match="checksum mismatch, the file is corrupt"):
        checkpoint.read(tmp_path / "c.npz")


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "plain npz"])
def test_damaged_files_raise_checkpoint_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "c.npz"
    checkpoint.write(path, {"W": np.linspace(0, 1, 1000)}, {"epoch": 1})
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        middle = len(raw) // 2
        path.write_bytes(raw[:middle] + bytes([raw[middle] ^ 0x10]) + raw[middle + 1:])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        np.savez(path, W=np.zeros(3))
    with pytest.raises(CheckpointError, match=f"^{path}: ") as err:
        checkpoint.read(path)
    assert any(s in str(err.value) for s in ("unreadable", "checksum", "not a graphc"))


def test_listing_orders_by_step_and_ignores_other_files(tmp_path):
    for step in (120, 8, 40):
        checkpoint.write(tmp_path / checkpoint.file_name(step), {}, {})
    (tmp_path / ".tmp-xyzckpt-00000999.npz").write_bytes(b"half a file")
    (tmp_path / "notes.txt").write_text("hi")
    assert [os.path.basename(p) for p in checkpoint.listing(tmp_path)] == [
        "ckpt-00000008.npz", "ckpt-00000040.npz", "ckpt-00000120.npz"]
    assert checkpoint.listing(tmp_path / "absent") == []


# --- what the trainer writes -----------------------------------------------------------------
def test_checkpointing_does_not_change_the_run(data, reference, tmp_path):
    trainer = make_trainer()
    history = trainer.fit(*data, checkpoint_dir=tmp_path, checkpoint_every=4, **FIT)
    assert_same_run(trainer, history, reference)


def test_checkpoints_every_n_steps_and_at_epoch_ends(series):
    """Steps 4 and 8 mid-epoch, 10 at epoch 1's end, 12 16 ... but never a mid-epoch one at
    an epoch's last step (the epoch-end checkpoint, after validation, comes instead)."""
    steps = [checkpoint.read(p).meta["global_step"] for p in series]
    assert steps == [4, 8, 10, 12, 16, 20, 24, 28, 30]
    metas = [checkpoint.read(p).meta for p in series]
    assert [(m["epoch"], m["batch"]) for m in metas[:4]] == [(0, 4), (0, 8), (1, 0), (1, 2)]
    assert [len(m["history"]) for m in metas] == [0, 0, 1, 1, 1, 2, 2, 2, 3]
    first = checkpoint.read(series[0])
    assert {"W1", "b1", "W2", "b2", "t", "m_W1", "v_b2"} <= first.arrays.keys()
    assert first.meta["rng_state"]["bit_generator"] == "PCG64"


def test_mid_epoch_checkpoints_hold_the_generator_state_before_the_epoch_draw(series):
    metas = [checkpoint.read(p).meta for p in series]
    assert metas[0]["rng_state"] == metas[1]["rng_state"]  # steps 4 and 8: both epoch 1
    assert metas[2]["rng_state"] == metas[3]["rng_state"]  # epoch 1's end = epoch 2's start
    assert metas[0]["rng_state"] != metas[2]["rng_state"]


def test_keep_leaves_the_newest_k(data, tmp_path):
    make_trainer().fit(*data, checkpoint_dir=tmp_path, checkpoint_every=4, keep=2, **FIT)
    assert [os.path.basename(p) for p in checkpoint.listing(tmp_path)] == [
        "ckpt-00000028.npz", "ckpt-00000030.npz"]


def test_a_fresh_run_deletes_an_earlier_runs_checkpoints_with_a_warning(data, series, tmp_path):
    copy_up_to(series, series[-1], tmp_path)
    with pytest.warns(CheckpointWarning, match="starting afresh: deleting 9 checkpoint"):
        make_trainer().fit(*data, checkpoint_dir=tmp_path, **{**FIT, "epochs": 1})
    assert [os.path.basename(p) for p in checkpoint.listing(tmp_path)] == ["ckpt-00000010.npz"]


# --- resuming --------------------------------------------------------------------------------
@pytest.mark.parametrize("index", [0, 1, 2, 3, 6])
def test_resume_from_any_checkpoint_replays_the_same_run(data, reference, series, index,
                                                          tmp_path, capsys):
    """Mid-epoch (steps 4, 8, 12, 24) and at an epoch's end (step 10): bit-identical result."""
    copy_up_to(series, series[index], tmp_path)
    trainer = make_trainer()
    history = trainer.fit(*data, checkpoint_dir=tmp_path, resume=True,
                          **{**FIT, "progress": True})
    assert_same_run(trainer, history, reference)
    resumed = os.path.join(tmp_path, os.path.basename(series[index]))
    assert f"resuming from {resumed}" in capsys.readouterr().out


def test_resume_falls_back_past_corrupt_and_truncated_checkpoints(data, reference, series,
                                                                   tmp_path):
    copy_up_to(series, series[4], tmp_path)
    newest, second = checkpoint.listing(tmp_path)[-2:][::-1]
    with open(newest, "r+b") as f:
        f.truncate(os.path.getsize(newest) // 2)
    raw = bytearray(open(second, "rb").read())
    raw[len(raw) // 3] ^= 0xFF
    open(second, "wb").write(bytes(raw))
    trainer = make_trainer()
    with pytest.warns(CheckpointWarning) as caught:
        history = trainer.fit(*data, checkpoint_dir=tmp_path, resume=True, **FIT)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert messages[0].startswith(f"skipping checkpoint {newest}: unreadable")
    assert f"skipping checkpoint {second}: " in messages[1]
    assert all(m.endswith("falling back to the previous one") for m in messages)
    assert_same_run(trainer, history, reference)


def test_resume_with_only_corrupt_checkpoints_starts_afresh(data, reference, tmp_path, capsys):
    (tmp_path / checkpoint.file_name(10)).write_bytes(b"PK\x03\x04 broken")
    trainer = make_trainer()
    with pytest.warns(CheckpointWarning, match="skipping checkpoint"):
        history = trainer.fit(*data, checkpoint_dir=tmp_path, resume=True,
                              **{**FIT, "progress": True})
    assert "starting from the beginning" in capsys.readouterr().out
    assert_same_run(trainer, history, reference)


def test_resume_without_checkpoints_starts_afresh(data, reference, tmp_path):
    trainer = make_trainer()
    history = trainer.fit(*data, checkpoint_dir=tmp_path / "new", resume=True, **FIT)
    assert_same_run(trainer, history, reference)


def test_resuming_a_finished_run_trains_no_more(data, reference, series, tmp_path):
    copy_up_to(series, series[-1], tmp_path)
    trainer = make_trainer()
    history = trainer.fit(*data, checkpoint_dir=tmp_path, resume=True, **FIT)
    assert_same_run(trainer, history, reference)
    assert len(checkpoint.listing(tmp_path)) == len(series)


def test_resume_with_more_epochs_goes_on_where_the_run_ended(data, series, tmp_path):
    longer = make_trainer()
    want = longer.fit(*data, **{**FIT, "epochs": 4})
    copy_up_to(series, series[-1], tmp_path)
    trainer = make_trainer()
    history = trainer.fit(*data, checkpoint_dir=tmp_path, resume=True, **{**FIT, "epochs": 4})
    assert_same_run(trainer, history, (arrays(longer), want))


def test_resume_refuses_another_batch_size_or_dataset(data, series, tmp_path):
    copy_up_to(series, series[1], tmp_path)
    with pytest.raises(CheckpointError, match="saved with batch_size 16, this run has 8"):
        make_trainer().fit(*data, checkpoint_dir=tmp_path, resume=True, **{**FIT, "batch_size": 8})
    with pytest.raises(CheckpointError, match="saved with train_size 150, this run has 100"):
        make_trainer().fit(blobs(100, 0), data[1], checkpoint_dir=tmp_path, resume=True, **FIT)


def test_resume_refuses_a_checkpoint_of_another_model_and_changes_nothing(data, tmp_path):
    checkpoint.write(tmp_path / checkpoint.file_name(4), {"W1": np.zeros((8, 16))},
                     {"batch_size": 16, "train_size": 150})
    trainer = make_trainer()
    before = arrays(trainer)
    with pytest.raises(CheckpointError, match="no array 'b1'; is it a checkpoint of another"):
        trainer.fit(*data, checkpoint_dir=tmp_path, resume=True, **FIT)
    assert all(np.array_equal(before[k], v) for k, v in arrays(trainer).items())


def test_resume_with_early_stopping_replays_the_same_stop(data, tmp_path):
    noise = blobs(60, 1, shuffled_labels=True)
    fit = {**FIT, "epochs": 30, "patience": 2}
    straight = make_trainer()
    want = straight.fit(data[0], noise, **fit)
    full = tmp_path / "full"
    make_trainer().fit(data[0], noise, checkpoint_dir=full, checkpoint_every=3, keep=100, **fit)
    paths = checkpoint.listing(full)
    assert checkpoint.read(paths[-1]).meta["stopped"]
    for last in (paths[1], paths[len(paths) // 2], paths[-1]):
        directory = tmp_path / os.path.basename(last)
        copy_up_to(paths, last, directory)
        trainer = make_trainer()
        history = trainer.fit(data[0], noise, checkpoint_dir=directory, resume=True, **fit)
        assert_same_run(trainer, history, (arrays(straight), want))


# --- graphc train ----------------------------------------------------------------------------
def test_cli_train_checkpoints_and_resumes(tmp_path, capsys):
    directory = str(tmp_path / "ck")
    common = [DIGITS, "--checkpoint-dir", directory, "--checkpoint-every", "10"]
    assert main(["train", *common, "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"checkpoints in {directory}" in out
    assert "epoch 1/2  loss" in out and "epoch 2/2  loss" in out and "test accuracy" in out
    assert main(["train", *common, "--epochs", "3", "--resume",
                 "--save", str(tmp_path / "resumed.npz")]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "(step 68): epoch 3, minibatch 1" in out
    assert "epoch 1/3" not in out and "epoch 3/3  loss" in out and "test accuracy" in out
    assert len(checkpoint.listing(directory)) == 3
    assert main(["train", DIGITS, "--epochs", "3", "--checkpoint-dir", str(tmp_path / "other"),
                 "--save", str(tmp_path / "straight.npz")]) == 0
    with np.load(tmp_path / "resumed.npz") as a, np.load(tmp_path / "straight.npz") as b:
        assert a.files == b.files
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_cli_default_checkpoint_dir_is_named_after_the_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", DIGITS, "--epochs", "1", "--keep", "1"]) == 0
    assert "checkpoints in checkpoints/mlp_digits" in capsys.readouterr().out
    assert [os.path.basename(p) for p in checkpoint.listing("checkpoints/mlp_digits")] == [
        "ckpt-00000034.npz"]


@pytest.mark.parametrize("flag", ["--keep", "--checkpoint-every", "--epochs"])
def test_cli_refuses_non_positive_counts(flag, capsys):
    with pytest.raises(SystemExit):
        main(["train", DIGITS, flag, "0"])
    assert "must be a positive integer" in capsys.readouterr().err
