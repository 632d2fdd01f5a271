"""Checkpoints: the file format and its checksum, damaged files detected and skipped, keeping
the last K, and resuming in-process bit for bit from any checkpoint, mid-epoch included,
through ``Trainer.fit`` and through ``graphc train --resume``.

(A real SIGKILL of a training process is in test_resume_kill.py.)
"""

from __future__ import annotations

import errno
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
    assert len(messages) == 4
    assert messages[0].startswith(f"skipping checkpoint {newest}: unreadable")
    assert f"skipping checkpoint {second}: " in messages[1]
    assert all(m.endswith("falling back to the previous one") for m in messages[:2])
    # the first checkpoint the resumed run writes (step 20) sets the two damaged ones aside
    assert messages[2].startswith(f"set aside damaged checkpoint as {newest}.corrupt ")
    assert messages[3].startswith(f"set aside damaged checkpoint as {second}.corrupt ")
    assert sorted(checkpoint.set_aside(tmp_path)) == sorted([newest + ".corrupt",
                                                            second + ".corrupt"])
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


# --- nothing saved is lost: pruning past damage, bad metadata, failing disks ------------------
def small(directory, steps) -> dict[str, bytes]:
    """Tiny valid checkpoints at ``steps`` in ``directory``; their bytes by file name."""
    for step in steps:
        checkpoint.write(os.path.join(directory, checkpoint.file_name(step)),
                         {"W": np.full(3, float(step))}, {"step": step})
    return snapshot(directory)


def snapshot(directory) -> dict[str, bytes]:
    """Every file in ``directory`` (temporary files included), name to bytes."""
    return {name: open(os.path.join(directory, name), "rb").read()
            for name in sorted(os.listdir(directory))}


def test_prune_keeps_the_newest_valid_and_sets_damaged_ones_aside(tmp_path):
    small(tmp_path, [4, 8, 12, 16])
    damaged = str(tmp_path / checkpoint.file_name(12))
    open(damaged, "wb").write(b"PK\x03\x04 not a zip")
    with pytest.warns(CheckpointWarning, match=f"set aside damaged checkpoint as {damaged}"
                                                f".corrupt \\({damaged}: unreadable"):
        checkpoint.prune(tmp_path, 2)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-00000008.npz", "ckpt-00000012.npz.corrupt",
                                            "ckpt-00000016.npz"]
    assert checkpoint.set_aside(tmp_path) == [damaged + ".corrupt"]
    assert open(damaged + ".corrupt", "rb").read() == b"PK\x03\x04 not a zip"
    assert checkpoint.read(tmp_path / checkpoint.file_name(8)).arrays["W"][0] == 8.0


def test_prune_touches_nothing_while_no_checkpoint_is_valid(tmp_path):
    for step in (4, 8):
        (tmp_path / checkpoint.file_name(step)).write_bytes(b"garbage")
    before = snapshot(tmp_path)
    checkpoint.prune(tmp_path, 1)
    assert snapshot(tmp_path) == before


def test_keep_1_with_a_corrupt_newest_checkpoint_keeps_the_fresh_ones(data, reference, tmp_path):
    """The corrupt ckpt-30 has the highest step; pruning used to keep it and delete each
    fresh checkpoint, so a second resume started from scratch again."""
    corrupt = tmp_path / checkpoint.file_name(30)
    corrupt.write_bytes(b"PK\x03\x04 broken")
    with pytest.warns(CheckpointWarning):
        make_trainer().fit(*data, checkpoint_dir=tmp_path, resume=True, keep=1,
                           **{**FIT, "epochs": 1})
    assert [os.path.basename(p) for p in checkpoint.listing(tmp_path)] == ["ckpt-00000010.npz"]
    assert checkpoint.set_aside(tmp_path) == [f"{corrupt}.corrupt"]
    trainer = make_trainer()
    history = trainer.fit(*data, checkpoint_dir=tmp_path, resume=True, keep=1, **FIT)
    assert_same_run(trainer, history, reference)  # went on from step 10, not from scratch


def test_a_fresh_run_also_deletes_set_aside_checkpoints(data, tmp_path):
    small(tmp_path, [4])
    (tmp_path / "ckpt-00000008.npz.corrupt").write_bytes(b"damaged")
    (tmp_path / "notes.corrupt").write_text("not ours")
    with pytest.warns(CheckpointWarning, match="deleting 2 checkpoint"):
        make_trainer().fit(*data, checkpoint_dir=tmp_path, **{**FIT, "epochs": 1})
    assert sorted(os.listdir(tmp_path)) == ["ckpt-00000010.npz", "notes.corrupt"]


def test_a_directory_with_a_checkpoints_name_is_neither_listed_nor_overwritten(tmp_path):
    small(tmp_path, [4])
    (tmp_path / checkpoint.file_name(8)).mkdir()
    (tmp_path / checkpoint.file_name(8) / "inside").write_text("kept")
    assert [os.path.basename(p) for p in checkpoint.listing(tmp_path)] == ["ckpt-00000004.npz"]
    path = tmp_path / checkpoint.file_name(8)
    with pytest.raises(CheckpointError, match=f"^{path}: cannot write the checkpoint .*: "
                                              r"Is a directory \(EISDIR\)$"):
        checkpoint.write(path, {"W": np.zeros(2)}, {})
    with pytest.raises(CheckpointError, match=f"^{path}: unreadable.*IsADirectoryError"):
        checkpoint.read(path)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-00000004.npz", "ckpt-00000008.npz"]
    assert (path / "inside").read_text() == "kept"


@pytest.mark.parametrize("field, value, message", [
    ("history", None, "has no field 'history'; was it written by another program"),
    ("batch_size", None, "has no field 'batch_size'"),
    ("epoch", "1", "metadata field 'epoch' should be a count, got '1'"),
    ("batch", -2, "metadata field 'batch' should be a count, got -2"),
    ("stopped", 0, "metadata field 'stopped' should be true or false, got 0"),
    ("history", [{"epoch": 1}], "metadata field 'history' should be a list of epoch results"),
    ("rng_state", {"bit_generator": "MT19937"}, "'rng_state' is not a state of PCG64 "
                                                "\\(state must be for a PCG64"),
])
def test_bad_metadata_is_refused_by_name_and_changes_nothing(data, series, tmp_path, field,
                                                             value, message):
    """A checkpoint that verifies but whose metadata lacks a field or has one of the wrong
    kind (another program wrote it): a CheckpointError naming the file and the field."""
    ckpt = checkpoint.read(series[3])
    meta = {k: v for k, v in ckpt.meta.items() if k != "format"}
    if value is None:
        del meta[field]
    else:
        meta[field] = value
    path = tmp_path / os.path.basename(series[3])
    checkpoint.write(path, ckpt.arrays, meta)
    trainer = make_trainer()
    before = arrays(trainer)
    with pytest.raises(CheckpointError, match=f"^{path}: .*{message}"):
        trainer.fit(*data, checkpoint_dir=tmp_path, resume=True, **FIT)
    assert all(np.array_equal(before[k], v) for k, v in arrays(trainer).items())


def test_a_checkpoint_directory_that_is_a_file_fails_before_training(data, tmp_path):
    occupied = tmp_path / "ck"
    occupied.write_text("a file")
    trainer = make_trainer()
    before = arrays(trainer)
    for resume in (False, True):
        with pytest.raises(CheckpointError, match=f"^{occupied}: the checkpoint directory is "
                                                  "a file, not a directory$"):
            trainer.fit(*data, checkpoint_dir=occupied, resume=resume, **FIT)
    with pytest.raises(CheckpointError, match=f"^{occupied / 'sub'}: cannot create the "
                                              r"checkpoint directory: Not a directory \(ENOTDIR"):
        trainer.fit(*data, checkpoint_dir=occupied / "sub", **FIT)
    assert all(np.array_equal(before[k], v) for k, v in arrays(trainer).items())
    assert occupied.read_text() == "a file"


def _fail(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def _write_then_fail(f, *args, **kwargs):
    f.write(b"\x93NUMPY the first bytes of an array")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("target, replacement, reason", [
    ("numpy.lib.format.write_array", _write_then_fail, r"No space left on device \(ENOSPC\)"),
    ("os.fsync", _fail(errno.ENOSPC), r"No space left on device \(ENOSPC\)"),
    ("os.replace", _fail(errno.EROFS), r"Read-only file system \(EROFS\)"),
    ("tempfile.mkstemp", _fail(errno.EROFS), r"Read-only file system \(EROFS\)"),
    ("tempfile.mkstemp", _fail(errno.EACCES), r"Permission denied \(EACCES\)"),
])
@pytest.mark.parametrize("step", [12, 8])  # a new file, and over an existing one
def test_a_failed_write_loses_nothing_and_leaves_no_temporary_file(tmp_path, monkeypatch,
                                                                   target, replacement, reason,
                                                                   step):
    before = small(tmp_path, [4, 8])
    monkeypatch.setattr(target, replacement)
    path = tmp_path / checkpoint.file_name(step)
    with pytest.raises(CheckpointError, match=f"^{path}: cannot write the checkpoint "
                                              f"\\(the earlier ones are intact\\): {reason}$"):
        checkpoint.write(path, {"W": np.zeros(1000)}, {"step": step})
    monkeypatch.undo()
    assert snapshot(tmp_path) == before  # same files, same bytes, no .tmp-*
    assert checkpoint.latest(tmp_path).meta["step"] == 8


def test_a_run_whose_checkpoint_cannot_be_written_stops_and_resumes_from_the_last_one(
        data, reference, tmp_path, monkeypatch):
    """The disk fills up when the step-12 checkpoint is renamed into place: fit raises a
    CheckpointError naming it, steps 4, 8 and 10 are on disk, and a resume replays the run."""
    real_replace = os.replace

    def replace(src, dst):
        if os.fspath(dst).endswith(checkpoint.file_name(12)):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(CheckpointError, match=f"^{tmp_path / checkpoint.file_name(12)}: cannot "
                                              r"write .*No space left on device \(ENOSPC\)$"):
        make_trainer().fit(*data, checkpoint_dir=tmp_path, checkpoint_every=4, keep=5, **FIT)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == [checkpoint.file_name(s) for s in (4, 8, 10)]
    trainer = make_trainer()
    history = trainer.fit(*data, checkpoint_dir=tmp_path, resume=True, **FIT)
    assert_same_run(trainer, history, reference)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory anyway; "
                    "the monkeypatched EROFS/EACCES cases above stand in for it")
def test_a_read_only_directory_gives_a_checkpoint_error(tmp_path):
    before = small(tmp_path, [4])
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(CheckpointError, match=r"Permission denied \(EACCES\)$"):
            checkpoint.write(tmp_path / checkpoint.file_name(8), {"W": np.zeros(2)}, {})
    finally:
        os.chmod(tmp_path, 0o755)
    assert snapshot(tmp_path) == before


def test_save_to_a_missing_directory_gives_a_checkpoint_error(tmp_path):
    path = tmp_path / "absent" / "params.npz"
    with pytest.raises(CheckpointError, match=f"^{path}: cannot write the parameters: "
                                              r"No such file or directory \(ENOENT\)$"):
        make_trainer().save(path)


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


def test_cli_checkpoint_dir_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    occupied = tmp_path / "ck"
    occupied.write_text("a file")
    assert main(["train", DIGITS, "--checkpoint-dir", str(occupied)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"graphc train: {occupied}: the checkpoint directory is a file, "
                            "not a directory\n")
    assert "epoch 1" not in captured.out


@pytest.mark.parametrize("flag", ["--keep", "--checkpoint-every", "--epochs"])
def test_cli_refuses_non_positive_counts(flag, capsys):
    with pytest.raises(SystemExit):
        main(["train", DIGITS, flag, "0"])
    assert "must be a positive integer" in capsys.readouterr().err


def test_a_checkpoint_with_a_float32_step_count_resumes_the_same_run(data, reference, series,
                                                                      tmp_path):
    """Checkpoints written before the step count became float64 hold it as the parameters'
    dtype: a count that widens exactly still resumes (an array of another shape or a
    narrowing dtype is still refused)."""
    ckpt = checkpoint.read(series[1])
    older = {**ckpt.arrays, "t": ckpt.arrays["t"].astype(np.float32)}
    checkpoint.write(tmp_path / os.path.basename(series[1]), older, ckpt.meta)
    trainer = make_trainer()
    history = trainer.fit(*data, checkpoint_dir=tmp_path, resume=True, **FIT)
    assert_same_run(trainer, history, reference)
