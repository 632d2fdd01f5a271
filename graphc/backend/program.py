"""A compiled program: the generated module's source, loaded and callable with feeds that
are checked before any generated code runs."""

from __future__ import annotations

import linecache
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.backend.printer import Signature
from graphc.errors import FeedError, NumericsError
from graphc.ir.node import Node
from graphc.ir.shapes import format_shape


class Program:
    """Generated NumPy code, ready to run: ``prog(x=..., labels=...)`` returns a list of
    arrays, one per output. Parameters and optimizer state live in the program's nodes and
    are updated in place by training steps."""

    def __init__(self, source: str, signature: Signature, outputs: Sequence[Node],
                 stages: list, names: dict[int, str], standalone) -> None:
        self.source = source
        self.signature = signature
        self.outputs = list(outputs)
        self.stages = stages
        self.names = names
        self._standalone = standalone
        self._fn = load(source)["main"]
        self._by_name = {n.name: n for n in signature.inputs}

    # --- running ---
    def __call__(self, **feeds: Any) -> list[np.ndarray]:
        args = self.check_feeds(feeds)
        try:
            return self._fn(*args, *(n.value for n in self.signature.owned))
        except FloatingPointError as err:
            if type(err) is FloatingPointError and "produced by" in str(err):
                raise NumericsError(str(err)) from None
            raise

    def check_feeds(self, feeds: dict[str, Any]) -> list[np.ndarray]:
        """Feeds as arrays in argument order; a FeedError names any input that is wrong."""
        missing = [n for n in self._by_name if n not in feeds]
        extra = [k for k in feeds if k not in self._by_name]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing input(s) {missing}")
            if extra:
                parts.append(f"unknown input(s) {extra}")
            raise FeedError("; ".join(parts) + f"; the program takes {list(self._by_name)}")
        dims: dict[str, tuple[int, str]] = {}
        return [_check_feed(node, feeds[node.name], dims) for node in self.signature.inputs]

    # --- inspection and saving ---
    @property
    def params(self) -> dict[str, np.ndarray]:
        """The live arrays of the parameters, by name."""
        return {n.name: n.value for n in self.signature.owned if n.op.name == "param"}

    def save(self, path: str | os.PathLike) -> None:
        """Write a standalone module (importing only numpy) and its parameters beside it.

        ``path`` is the .py file; parameters and state go to the same name with .npz, and
        the module's ``main`` takes the same keyword arguments as this program.
        """
        path = os.fspath(path)
        if not path.endswith(".py"):
            raise ValueError(f"save: the path must end in .py, got {path!r}")
        arrays = {self.names[n.id]: n.value for n in self.signature.owned}
        atomic_write(path[:-3] + ".npz", lambda f: np.savez(f, **arrays))
        source = self._standalone(".npz")
        atomic_write(path, lambda f: f.write(source.encode()))

    def __repr__(self) -> str:
        inputs = ", ".join(self._by_name)
        return f"<graphc.Program main({inputs}) -> {len(self.outputs)} output(s)>"


def _check_feed(node: Node, value: Any, dims: dict[str, tuple[int, str]]) -> np.ndarray:
    name = node.name
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise FeedError(f"input {name!r}: expected numbers ({node.dtype}), got {array.dtype}")
    if node.dtype.kind in "iu" and array.dtype.kind == "f":
        raise FeedError(f"input {name!r}: expected integers ({node.dtype}), got {array.dtype}")
    if array.ndim != len(node.shape):
        raise FeedError(f"input {name!r}: expected shape {format_shape(node.shape)}, got "
                        f"{array.shape} ({array.ndim} dimensions instead of {len(node.shape)})")
    for axis, (want, got) in enumerate(zip(node.shape, array.shape)):
        if isinstance(want, int) and want != got:
            raise FeedError(f"input {name!r}: expected shape {format_shape(node.shape)}, got "
                            f"{array.shape} (axis {axis} is {got}, not {want})")
        if isinstance(want, str):
            size, first = dims.setdefault(want, (got, name))
            if size != got:
                raise FeedError(f"input {name!r}: dimension {want!r} is {got} here but {size} "
                                f"in input {first!r}")
    return array if array.dtype == node.dtype else array.astype(node.dtype)


_counter = [0]


def load(source: str) -> dict[str, Any]:
    """Execute generated source in a fresh namespace, registered with linecache so that
    tracebacks show the generated lines."""
    _counter[0] += 1
    filename = f"<graphc-generated-{_counter[0]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"graphc_generated_{_counter[0]}"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 (our own generated code)
    return namespace


def atomic_write(path: str, write) -> None:
    """Write a file through a temporary beside it, fsync and rename: never half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
