"""Writing files so that a crash or a full disk never leaves half of one: what saved
programs (``Program.save``), checkpoints and ``Trainer.save`` share."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any


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
