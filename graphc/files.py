"""Writing files so that a crash or a full disk never leaves half of one, and named arrays as
.npz whatever their names: what saved programs (``Program.save``), checkpoints and
``Trainer.save`` share."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np


def atomic_write(path: str, write: Callable[[Any], object]) -> None:
    """Write a file through a temporary beside it, fsync and rename: never half a file.

    Whatever fails (``write`` itself, a full or read-only disk at any step, a directory at
    ``path``) leaves the old file at ``path`` untouched and no temporary file behind, and the
    error propagates. After the rename the directory is fsynced too (best effort: not every
    file system can), so that the new name is on disk before the caller deletes older files.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    f = os.fdopen(fd, "wb")
    try:
        with f:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # as open() would make it, not mkstemp's 0600
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # the file is in place; some file systems (and Windows) cannot sync a directory


def write_npz(f: IO[bytes], arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to the open file ``f`` as an uncompressed .npz, each under its name,
    as ``np.savez`` does and ``np.load`` reads. Unlike ``np.savez(f, **arrays)`` any name is
    kept: savez takes its own arguments from the names too, so one named ``allow_pickle``
    would vanish from the file and one named ``file`` raise TypeError. No array is pickled.
    """
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:  # as savez does
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
