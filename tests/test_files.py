"""Named arrays as .npz (``graphc.files.write_npz``), which saved programs, checkpoints and
``Trainer.save`` share: every name comes back from ``np.load``, those that ``np.savez(f,
**arrays)`` would take for its own arguments included (it dropped ``allow_pickle`` from the
file and raised TypeError for ``file``)."""

from __future__ import annotations

import numpy as np
from test_api import run_saved
from test_trainer import blobs

import graphc as gc
from graphc.files import write_npz
from graphc.train import checkpoint
from graphc.train.trainer import Trainer

#: Names np.savez takes for its own arguments.
CLASHING = ("allow_pickle", "file")


def clashing_net() -> tuple[list[gc.Node], gc.Node, gc.Node]:
    """An MLP on blobs (8 features, 3 classes) whose parameters are named as in CLASHING."""
    x = gc.input("x", ("batch", 8))
    labels = gc.input("labels", ("batch",), dtype="int64")
    hidden = gc.param("allow_pickle", (8, 4), seed=1)
    out = gc.param("file", (4, 3), seed=2)
    scores = gc.tanh(x @ hidden) @ out
    return [x, labels], scores, gc.softmax_cross_entropy(scores, labels)


def test_write_npz_keeps_every_name_dtype_and_shape(tmp_path):
    arrays = {"allow_pickle": np.arange(3.0), "file": np.eye(2, dtype=np.float32),
              "graphc:meta": np.frombuffer(b"{}", dtype=np.uint8), "n": np.array(7)}
    path = tmp_path / "a.npz"
    with open(path, "wb") as f:
        write_npz(f, arrays)
    with np.load(path, allow_pickle=False) as saved:
        assert saved.files == list(arrays)
        for name, want in arrays.items():
            got = saved[name]
            assert got.dtype == want.dtype and got.shape == want.shape, name
            np.testing.assert_array_equal(got, want)


def test_program_save_keeps_parameters_named_like_savez_arguments(tmp_path):
    inputs, scores, loss = clashing_net()
    prog = gc.compile([loss], inputs, optimizer=gc.SGD(0.1))
    prog.save(tmp_path / "step.py")
    with np.load(tmp_path / "step.npz") as saved:
        assert set(saved.files) == set(prog.params) >= set(CLASHING)
        for name in CLASHING:
            np.testing.assert_array_equal(saved[name], prog.params[name])
    data = blobs(5, 0)
    feeds = {"x": data.x, "labels": data.y}
    [[got]], _ = run_saved(tmp_path, feeds, 1, [])  # its loss: both parameters read back
    (want,) = prog(**feeds)
    np.testing.assert_array_equal(got, want)


def test_a_checkpoint_keeps_arrays_named_like_savez_arguments(tmp_path):
    arrays = {"allow_pickle": np.arange(4.0), "file": np.ones((2, 2))}
    path = tmp_path / checkpoint.file_name(1)
    checkpoint.write(path, arrays, {"epoch": 1})
    ckpt = checkpoint.read(path)
    assert ckpt.arrays.keys() == arrays.keys() and ckpt.meta["epoch"] == 1
    for name, want in arrays.items():
        np.testing.assert_array_equal(ckpt.arrays[name], want)


def test_trainer_checkpoints_and_saves_parameters_named_like_savez_arguments(tmp_path):
    inputs, scores, loss = clashing_net()
    trainer = Trainer(loss, inputs, gc.SGD(0.1), scores=scores)
    trainer.fit(blobs(32, 0), epochs=1, batch_size=16, progress=False,
                checkpoint_dir=tmp_path / "ck")
    latest = checkpoint.latest(tmp_path / "ck")
    assert latest is not None and set(CLASHING) <= latest.arrays.keys()
    trainer.save(tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz") as saved:
        assert sorted(saved.files) == sorted(CLASHING)
        for p in trainer.params:
            np.testing.assert_array_equal(saved[p.name], p.value)
            np.testing.assert_array_equal(latest.arrays[p.name], p.value)
    trained = {p.name: p.value.copy() for p in trainer.params}
    for p in trainer.params:
        p.value[...] = 0
    trainer.load(tmp_path / "p.npz")
    for p in trainer.params:
        np.testing.assert_array_equal(p.value, trained[p.name])
