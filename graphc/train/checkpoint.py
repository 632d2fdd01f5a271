"""Training checkpoints: one .npz file per checkpoint, written atomically, checked on reading.

A checkpoint holds named arrays (a training step's parameters and optimizer state, under their
generated names) plus two entries of its own: ``graphc:meta``, the JSON metadata (epoch, step,
data-order generator state...) as UTF-8 bytes, and ``graphc:sha256``, the SHA-256 digest of
every other entry's name, dtype, shape and bytes. Their names hold a colon, which no generated
name can, so they never collide with an array.

A file that cannot be read as a zip of arrays, lacks an entry, or fails its checksum raises
CheckpointError; ``latest`` skips such files with a warning and falls back to older ones, so a
run killed while writing (or a disk that flipped a bit) costs at most one checkpoint.

Nothing saved is lost: a write that fails (a full or read-only disk, a directory in the way)
raises CheckpointError naming the file and the reason, and leaves the earlier checkpoints and
no temporary file. ``prune`` keeps the newest *valid* checkpoints: a damaged file never counts
towards ``keep``, and is set aside as ``<name>.corrupt`` (kept for inspection, never read
again), not deleted, and only once a valid checkpoint exists to resume from instead.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphc.errors import CheckpointError
from graphc.files import atomic_write, write_npz

#: Version of the layout below; a reader refuses other versions.
FORMAT = 1
META_KEY = "graphc:meta"
CHECKSUM_KEY = "graphc:sha256"
_NAME = re.compile(r"ckpt-(\d+)\.npz")
#: The suffix ``prune`` gives a damaged checkpoint it sets aside.
CORRUPT_SUFFIX = ".corrupt"
#: What reading a damaged .npz can raise, depending on where the damage is.
_UNREADABLE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped (corrupt or truncated) or an earlier run's were replaced."""


@dataclass
class Checkpoint:
    """A checkpoint as read back: its file, its arrays by name, and its metadata."""

    path: str
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def file_name(global_step: int) -> str:
    """The file name of the checkpoint taken after ``global_step`` training steps."""
    return f"ckpt-{global_step:08d}.npz"


def digest(entries: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (hex) over the entries in name order: each one's name, dtype, shape and bytes,
    length-prefixed so that no two different contents hash the same stream."""
    h = hashlib.sha256()
    for key in sorted(entries):
        array = np.ascontiguousarray(entries[key])
        header = json.dumps([key, array.dtype.str, list(array.shape)]).encode()
        data = array.tobytes()
        for chunk in (header, data):
            h.update(len(chunk).to_bytes(8, "little"))
            h.update(chunk)
    return h.hexdigest()


def os_error(path: str, doing: str, err: OSError) -> CheckpointError:
    """A CheckpointError for an OSError met while ``doing`` something to ``path``: the path,
    the action, and the errno's meaning and name (``No space left on device (ENOSPC)``)."""
    if err.errno is not None and err.errno in errno.errorcode:
        reason = f"{os.strerror(err.errno)} ({errno.errorcode[err.errno]})"
    else:
        reason = f"{type(err).__name__}: {err}"
    return CheckpointError(f"{path}: cannot {doing}: {reason}")


def ensure_directory(directory: str | os.PathLike) -> None:
    """Create the checkpoint directory (and its parents) if absent; CheckpointError if it
    cannot be, e.g. because a file of that name is in the way."""
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CheckpointError(f"{directory}: the checkpoint directory is a file, not a "
                              "directory")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise os_error(directory, "create the checkpoint directory", err) from err


def write(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
          meta: Mapping[str, Any]) -> None:
    """Write a checkpoint atomically (temporary file, fsync, rename): never half a file.

    An OSError (full or read-only disk, a directory at ``path``...) becomes a CheckpointError
    naming the file; the temporary file is removed and whatever was at ``path`` is left.
    """
    if META_KEY in arrays or CHECKSUM_KEY in arrays:
        raise ValueError(f"array names {META_KEY!r} and {CHECKSUM_KEY!r} are reserved")
    path = os.fspath(path)
    text = json.dumps({"format": FORMAT, **meta}, sort_keys=True)
    entries = {**arrays, META_KEY: np.frombuffer(text.encode(), dtype=np.uint8)}
    entries[CHECKSUM_KEY] = np.frombuffer(digest(entries).encode("ascii"), dtype=np.uint8)
    try:
        atomic_write(path, lambda f: write_npz(f, entries))
    except OSError as err:
        raise os_error(path, "write the checkpoint (the earlier ones are intact)", err) from err


def read(path: str | os.PathLike) -> Checkpoint:
    """Read and verify a checkpoint; CheckpointError says what is wrong with a bad file."""
    path = os.fspath(path)
    try:
        # our own handle: np.load leaks the one it opens when the zip does not parse
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            entries = {key: npz[key] for key in npz.files}
    except _UNREADABLE as err:
        raise CheckpointError(f"{path}: unreadable, truncated or not a checkpoint "
                              f"({type(err).__name__}: {err})") from err
    stored = entries.pop(CHECKSUM_KEY, None)
    if stored is None or META_KEY not in entries:
        raise CheckpointError(f"{path}: not a graphc checkpoint (no checksum or metadata)")
    if stored.dtype != np.uint8 or stored.tobytes() != digest(entries).encode("ascii"):
        raise CheckpointError(f"{path}: checksum mismatch, the file is corrupt")
    meta = json.loads(entries.pop(META_KEY).tobytes().decode())
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r}, this "
                              f"version of graphc reads format {FORMAT}")
    return Checkpoint(path, entries, meta)


def listing(directory: str | os.PathLike) -> list[str]:
    """The checkpoint files in ``directory``, oldest (fewest steps) first; temporary files of
    an interrupted write, set-aside ``.corrupt`` files, other files, and directories that
    happen to have a checkpoint's name are not listed."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    with os.scandir(directory) as entries:
        found = [(int(m.group(1)), entry.name) for entry in entries
                 if (m := _NAME.fullmatch(entry.name)) and entry.is_file()]
    return [os.path.join(directory, name) for _, name in sorted(found)]


def latest(directory: str | os.PathLike) -> Checkpoint | None:
    """The newest checkpoint in ``directory`` that reads and verifies, or None.

    Each newer file that fails is skipped with a CheckpointWarning naming it and the reason.
    """
    for path in reversed(listing(directory)):
        try:
            return read(path)
        except CheckpointError as err:
            warnings.warn(f"skipping checkpoint {err}; falling back to the previous one",
                          CheckpointWarning, stacklevel=2)
    return None


def prune(directory: str | os.PathLike, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints in ``directory`` that verify, delete older ones.

    Files are read newest first until ``keep`` verify; a damaged one among them does not count
    and is set aside as ``<name>.corrupt`` with a CheckpointWarning, but only if a valid
    checkpoint was found (the trainer prunes right after writing one, so that one is newer):
    with none valid, nothing is touched. Files older than the kept ones are deleted unread.
    """
    if keep < 1:
        raise ValueError(f"prune: keep must be at least 1, got {keep!r}")
    kept, damaged = 0, []
    paths = listing(directory)
    while paths and kept < keep:
        path = paths.pop()
        try:
            read(path)
            kept += 1
        except CheckpointError as err:
            damaged.append((path, err))
    if not kept:
        return
    for path, damage in damaged:
        try:
            os.replace(path, path + CORRUPT_SUFFIX)
        except OSError as err:
            raise os_error(path, "set aside the damaged checkpoint", err) from err
        warnings.warn(f"set aside damaged checkpoint as {path + CORRUPT_SUFFIX} ({damage})",
                      CheckpointWarning, stacklevel=2)
    delete(paths)


def set_aside(directory: str | os.PathLike) -> list[str]:
    """The damaged checkpoints ``prune`` set aside in ``directory``, in name order."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    with os.scandir(directory) as entries:
        return sorted(entry.path for entry in entries if entry.is_file()
                      and entry.name.endswith(CORRUPT_SUFFIX)
                      and _NAME.fullmatch(entry.name[: -len(CORRUPT_SUFFIX)]))


def delete(paths: Sequence[str]) -> None:
    """Delete checkpoint files; CheckpointError names the first that cannot be deleted."""
    for path in paths:
        try:
            os.unlink(path)
        except OSError as err:
            raise os_error(path, "delete the checkpoint", err) from err
