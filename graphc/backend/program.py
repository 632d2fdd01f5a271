"""A compiled program: the generated module's source, loaded and callable with feeds that
are checked before any generated code runs."""

from __future__ import annotations

import ast
import builtins
import hashlib
import html
import linecache
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from graphc.backend.printer import Signature
from graphc.errors import FeedError, NumericsError
from graphc.ir.node import Node
from graphc.ir.shapes import Shape, broadcast_shapes, format_shape
from graphc.ops.elementwise import arg
from graphc.passes.memory import MemoryPlan, bytes_of


@dataclass(frozen=True)
class StageCode:
    """One stage of the pipeline as code: its graph's node count, the module printed from
    it, the schedule printed, and the memory plan (from the "memory" stage on)."""

    name: str
    nodes: int
    source: str
    schedule: list[Node]
    plan: MemoryPlan | None


class Program:
    """Generated NumPy code, ready to run: ``prog(x=..., labels=...)`` returns a list of
    arrays, one per output. Parameters and optimizer state live in the program's nodes and
    are updated in place by training steps."""

    def __init__(self, source: str, signature: Signature, outputs: Sequence[Node],
                 stages: list, names: dict[int, str], standalone,
                 stage_code: Callable[[Any, bool], StageCode] | None = None) -> None:
        self.source = source
        self.signature = signature
        self.outputs = list(outputs)
        self.stages = stages
        self.names = names
        self._standalone = standalone
        self._stage_code = stage_code
        self._fn = load(source)["main"]
        self._by_name = {n.name: n for n in signature.inputs}
        #: Each input with the number of classes its labels index (None for other inputs).
        self._feed_checks = [(n, signature.classes.get(n.id)) for n in signature.inputs]

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
        if feeds.keys() != self._by_name.keys():
            missing = [n for n in self._by_name if n not in feeds]
            extra = [k for k in feeds if k not in self._by_name]
            parts = []
            if missing:
                parts.append(f"missing input(s) {missing}")
            if extra:
                parts.append(f"unknown input(s) {extra}")
            raise FeedError("; ".join(parts) + f"; the program takes {list(self._by_name)}")
        dims: dict[str, tuple[int, str]] = {}
        arrays = []
        for node, classes in self._feed_checks:
            array = _check_feed(node, feeds[node.name], dims)
            if classes is not None:
                _check_labels(node.name, array, classes)
            arrays.append(array)
        return arrays

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

    def report(self, print: bool = True, **dims: int) -> str:  # noqa: A002
        """A table of what each stage of the pipeline costs per step: graph nodes, NumPy
        calls (calls, binary operators and augmented assignments in ``main``), arrays newly
        allocated (statements that bind a fresh array rather than writing into a buffer, a
        view or an update in place) and their bytes with the named dims bound by ``dims``
        (``report(batch=32)``), and the bytes of the memory plan's buffers, all allocated
        once. Printed, and returned (``print=False`` only returns it)."""
        if self._stage_code is None:
            raise ValueError("report: this program was not made by gc.compile")
        rows = [["stage", "nodes", "numpy calls", "arrays allocated", "bytes allocated",
                 "buffer bytes"]]
        planned = False
        for stage in self.stages:
            planned = planned or stage.name == "memory"
            code = self._stage_code(stage, planned)
            count, size = _allocations(code, dims)
            peak = code.plan.peak_bytes(dims) if code.plan and _bound(code.plan, dims) else None
            rows.append([code.name, str(code.nodes), str(_numpy_calls(code.source)), str(count),
                         _bytes(size), _bytes(peak) if code.plan else "-"])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                           for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
        if dims:
            lines.append("at " + ", ".join(f"{k}={v}" for k, v in dims.items()))
        text = "\n".join(lines)
        if print:
            builtins.print(text)
        return text

    def _repr_html_(self) -> str:
        """In Jupyter, a program shows its generated code."""
        return f"<pre><code class=\"language-python\">{html.escape(self.source)}</code></pre>"

    def __repr__(self) -> str:
        inputs = ", ".join(self._by_name)
        return f"<graphc.Program main({inputs}) -> {len(self.outputs)} output(s)>"


def _numpy_calls(source: str) -> int:
    """Calls, binary operators and augmented assignments in the module's ``main``, leaving
    out the once-per-call buffer lookup (``_buffers``, ``_allocate``) and numerics checks."""
    main = next(n for n in ast.parse(source).body
                if isinstance(n, ast.FunctionDef) and n.name == "main")
    count = 0
    for n in ast.walk(main):
        if isinstance(n, ast.Call):
            fn = n.func
            count += not (isinstance(fn, ast.Name) and fn.id in ("_allocate", "_check_finite")
                          or isinstance(fn, ast.Attribute) and fn.attr in ("get", "setdefault"))
        elif isinstance(n, (ast.BinOp, ast.AugAssign)):
            count += 1
    return count


def _allocations(code: StageCode, dims: Mapping[str, int]) -> tuple[int, int | None]:
    """Arrays a step allocates afresh, and their bytes (None where a dim is unbound): one
    per operation of a plain elementwise expression or update (NumPy allocates a result at
    every operator), none for a statement writing into a buffer (except its plain operands),
    and one for any other op with a fresh result (a lower bound for the multi-line ops)."""
    placed = code.plan.placements if code.plan else {}
    arrays: list[tuple[Shape, np.dtype]] = []
    for node in code.schedule:
        if not node.op.fresh or node.op.inline or not node.inputs:
            continue
        if node.op.name in ("elementwise", "assign"):
            k = 1 if node.op.name == "assign" else 0
            shapes = {arg(j): x.shape for j, x in enumerate(node.inputs[k:])}
            placement = placed.get(node.id)
            if placement is None:
                exprs = [node.attrs["expr"]]
            else:
                exprs = [v for s in placement.lowering.steps for kind, v in s.args
                         if kind == "expr"]
            arrays += [(broadcast_shapes(*(shapes[x] for x in e.free_symbols)), node.dtype)
                       for expr in exprs for e in sp.preorder_traversal(expr)
                       if e.free_symbols and not isinstance(e, sp.Symbol)]
        elif node.id not in placed:
            arrays.append((node.shape, node.dtype))
    try:
        return len(arrays), sum(bytes_of(shape, dtype, dims) for shape, dtype in arrays)
    except KeyError:
        return len(arrays), None


def _bound(plan: MemoryPlan, dims: Mapping[str, int]) -> bool:
    return all(isinstance(d, int) or d in dims for b in plan.buffers for d in b.shape)


def _bytes(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size / 2**20:.2f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def _check_labels(name: str, labels: np.ndarray, classes: int) -> None:
    """Class labels must lie in 0..classes-1: NumPy would wrap -1 around silently."""
    if labels.size == 0:
        return
    # one reduction on the common path: seen unsigned, a negative label is a huge one
    if labels.view(f"u{labels.itemsize}").max() < classes:
        return
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        i = int(bad[0])
        raise FeedError(f"input {name!r}: label {labels.flat[i]} at index {i} is out of range "
                        f"for {classes} classes (expected 0..{classes - 1})")


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


def load(source: str) -> dict[str, Any]:
    """Execute generated source in a fresh namespace, registered with linecache so that
    tracebacks show the generated lines. The file name is a hash of the source: the same
    code has the same name in every traceback (and to tools that compare tracebacks)."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<graphc-generated-{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"graphc_generated_{digest}"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 (our own generated code)
    return namespace


def atomic_write(path: str, write) -> None:
    """Write a file through a temporary beside it, fsync and rename: never half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as open() would make it, not mkstemp's owner-only 0600
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
