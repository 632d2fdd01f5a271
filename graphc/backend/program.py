"""A compiled program: the generated module's source, loaded and callable with feeds that
are checked before any generated code runs."""

from __future__ import annotations

import ast
import builtins
import hashlib
import html
import linecache
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

import numpy as np
import sympy as sp

from graphc.backend.flat_storage import FlatStorage
from graphc.backend.memory import MemoryPlan, bytes_of, plan_memory
from graphc.backend.numerics import CheckedModule, NumericsCheck
from graphc.backend.printer import CodeOptions, Signature, print_module
from graphc.backend.schedule import schedule_of, signature_of
from graphc.errors import FeedError
from graphc.feeds import (
    Dims,
    Expected,
    FeedPlan,
    Feeds,
    as_expected,
    describe,
    leaf_name,
    resolve_feeds,
)
from graphc.files import atomic_write, write_npz
from graphc.ir.node import Node
from graphc.ir.shapes import Shape, broadcast_shapes
from graphc.ops.elementwise import arg
from graphc.passes.pipeline import Stage


@dataclass(frozen=True)
class StageCode:
    """One stage of the pipeline as code: its graph's node count, the module printed from
    it, the schedule printed, and the memory plan (where printed with buffers); the
    module's arguments and the variable of each node (what check_numerics needs to run a
    stage's module and trace its checks back to nodes)."""

    name: str
    nodes: int
    source: str
    schedule: list[Node]
    plan: MemoryPlan | None
    signature: Signature
    names: dict[int, str]


class Program:
    """Generated NumPy code, ready to run: ``prog(x=..., labels=...)`` returns a list of
    arrays, one per output. Parameters and optimizer state live in the program's nodes and
    are updated in place by training steps; ``params`` holds the parameters by name.
    ``feed_plan`` is what the graph needs of the values fed (label ranges, dimensions a mean
    divides by), checked at each call. With ``check_numerics``, each call runs through
    backend.numerics, which names the declared node behind a NaN or Inf (and needs
    ``stage_code``); without it, a call runs the generated code and nothing else."""

    def __init__(self, stages: Sequence[Stage], inputs: Sequence[Node], *, header: str,
                 options: CodeOptions, feed_plan: FeedPlan, planned: bool) -> None:
        """The program of the last of ``stages`` (the pipeline's graphs, from the graph as
        built), taking ``inputs``; ``planned``: its arrays live in buffers the memory plan
        allocates once (graphc.backend.memory). A program is data: its stages, schedule,
        signature and plan, from which it prints its module (and, for ``report``, ``save``
        and check_numerics, the module of any stage, or the standalone one)."""
        self.stages = list(stages)
        self.inputs = list(inputs)
        self.header = header
        self.options = options
        self.planned = planned
        final = self.stages[-1].graph
        self.schedule = schedule_of(final)
        self.signature = signature_of(self.inputs, self.schedule, feed_plan)
        self.plan = plan_memory(self.schedule, final.outputs) if planned else None
        self.outputs = list(final.outputs)
        self.source, self.names = print_module(self.schedule, final.outputs, self.signature,
                                               header, options, self.plan)
        self._fn = load(self.source)["main"]
        self._flat = FlatStorage(self.signature.flats)
        self._held = self._held_arrays()
        self._by_name = {leaf_name(n): n for n in self.signature.inputs}
        self._feed_plan = feed_plan
        self._expected = [Expected.of(n, feed_plan) for n in self.signature.inputs]
        self.params = Params(self.signature)
        self._numerics: NumericsCheck | None = None
        if options.check_numerics:
            program = CheckedModule(self._fn, self.source, self.signature, self.names,
                                    final.nodes())
            self._numerics = NumericsCheck(program, self.stages, self._checked_stage)

    def stage_code(self, stage: Stage, planned: bool) -> StageCode:
        """The module as printed from one stage's graph, with buffers where ``planned``
        (``report``, and the reference program of check_numerics)."""
        order = schedule_of(stage.graph)
        plan = plan_memory(order, stage.graph.outputs) if planned else None
        signature = signature_of(self.inputs, order, self._feed_plan)
        code, names = print_module(order, stage.graph.outputs, signature, self.header,
                                   self.options, plan)
        return StageCode(stage.name, len(stage.graph.nodes()), code, order, plan, signature,
                         names)

    # --- running ---
    def __call__(self, /, **feeds: Any) -> list[np.ndarray]:
        args = self.check_feeds(feeds)
        if self._rebinds != Node.rebinds:  # a leaf was bound to another array since
            self._held = self._held_arrays()
        if self._numerics is not None:
            return self._numerics(args)
        return self._fn(*args, *self._held)

    def _held_arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays of the held leaves and flats, with the flat storage laid out again
        where a leaf was bound to another array (graphc.backend.flat_storage)."""
        self._flat.current()
        self._rebinds = Node.rebinds
        return tuple(n.array for n in self.signature.held)

    def _checked_stage(self, stage: Stage) -> CheckedModule:
        """A stage's graph printed one statement per node with its checks, and loaded."""
        code = self.stage_code(stage, False)
        return CheckedModule(load(code.source)["main"], code.source, code.signature,
                             code.names, stage.graph.nodes())

    def check_feeds(self, feeds: Feeds) -> list[np.ndarray]:
        """Feeds as arrays in argument order; a FeedError names any input that is wrong.

        Keys are the inputs' names (as ``prog(**feeds)`` gives them) or the input nodes.
        """
        if self._keyed_by_input_name(feeds):
            arrays = as_expected(self._expected, feeds)
            if arrays is not None:
                return arrays
            named = feeds
        else:
            named = self._by_input_name(feeds)
        dims: Dims = {}
        check = self._feed_plan.check
        return [check(node, named[name], dims) for name, node in self._by_name.items()]

    def _keyed_by_input_name(self, feeds: Feeds) -> TypeGuard[Mapping[str, Any]]:
        return feeds.keys() == self._by_name.keys()

    def _by_input_name(self, feeds: Feeds) -> dict[str, Any]:
        """Feeds not keyed by exactly the inputs' names, resolved as ``gc.evaluate`` resolves
        them: a FeedError names an unknown key, a parameter the program holds rather than
        takes, or a missing input."""
        resolved = resolve_feeds(feeds, self.signature.leaves, "program")
        takes = f"the program takes {list(self._by_name)}"
        for node in resolved:
            if self._by_name.get(leaf_name(node)) is not node:
                raise FeedError(f"{describe(node)} is held by the program, not one of its inputs "
                                f"({takes}); list it in gc.compile's inputs to feed it at each "
                                f"call, or set prog.params[{node.name!r}] = value")
        missing = [n.name for n in self.signature.inputs if n not in resolved]
        if missing:
            raise FeedError(f"missing input(s) {missing}; {takes}")
        return {leaf_name(n): value for n, value in resolved.items()}

    # --- inspection and saving ---

    def save(self, path: str | os.PathLike) -> None:
        """Write a standalone module (importing only numpy) and its parameters beside it.

        ``path`` is the .py file; parameters and state go to the same name with .npz, and
        the module's ``main`` takes the same keyword arguments as this program.
        """
        path = os.fspath(path)
        if not path.endswith(".py"):
            raise ValueError(f"save: the path must end in .py, got {path!r}")
        arrays = {self.names[n.id]: n.array for n in self.signature.owned}
        atomic_write(path[:-3] + ".npz", lambda f: write_npz(f, arrays))
        options = replace(self.options, standalone_params=".npz")
        source = print_module(self.schedule, self.outputs, self.signature, self.header, options,
                              self.plan)[0]
        atomic_write(path, lambda f: f.write(source.encode()))

    def report(self, print: bool = False, **dims: int) -> Report:  # noqa: A002
        """A table of what each stage of the pipeline costs per step: graph nodes, NumPy
        calls (calls, binary operators and augmented assignments in ``main``), arrays newly
        allocated (statements that bind a fresh array rather than writing into a buffer, a
        view or an update in place) and their bytes with the named dims bound by ``dims``
        (``report(batch=32)``), and the bytes of the memory plan's buffers, all allocated
        once. Each stage is printed without buffers; a planned program ends with a row
        "memory": the last stage with its memory plan, the code that runs. Returned as a
        ``Report``, text that shows once wherever it is shown (at a prompt, by ``print``, as
        a table in Jupyter); ``print=True`` also prints it."""
        rows = [["stage", "nodes", "numpy calls", "arrays allocated", "bytes allocated",
                 "buffer bytes"]]
        codes = [self.stage_code(stage, False) for stage in self.stages]
        if self.planned:
            codes.append(replace(self.stage_code(self.stages[-1], True), name="memory"))
        for code in codes:
            count, size = _allocations(code, dims)
            peak = code.plan.peak_bytes(dims) if code.plan and _bound(code.plan, dims) else None
            rows.append([code.name, str(code.nodes), str(_numpy_calls(code.source)), str(count),
                         _bytes(size), _bytes(peak) if code.plan else "-"])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                           for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
        if dims:
            lines.append("at " + ", ".join(f"{k}={v}" for k, v in dims.items()))
        report = Report("\n".join(lines))
        report.rows = rows
        if print:
            builtins.print(report)
        return report

    def _repr_html_(self) -> str:
        """In Jupyter, a program shows its generated code."""
        return f"<pre><code class=\"language-python\">{html.escape(self.source)}</code></pre>"

    def __repr__(self) -> str:
        inputs = ", ".join(self._by_name)
        return f"<graphc.Program main({inputs}) -> {len(self.outputs)} output(s)>"


class Report(str):
    """``Program.report``'s table: a string (its text), which a prompt shows as the table
    rather than a quoted string, and Jupyter as an HTML table."""

    rows: list[list[str]]

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        head, *body = self.rows
        cells = ["<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"]
        cells += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                  for row in body]
        return "<table>" + "".join(cells) + "</table>"


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
        if "expr" in node.attrs:  # an elementwise expression, or an update computing one
            target = node.op.updates(node)
            values = node.inputs if target is None else node.inputs[target + 1:]
            shapes = {arg(j): x.shape for j, x in enumerate(values)}
            placement = placed.get(node.id)
            if placement is None or placement.lowering is None:
                exprs = [node.attrs["expr"]]
            else:
                exprs = [v for s in placement.lowering.steps for kind, v in s.args
                         if kind == "expr"]
            arrays += [(shape, node.dtype) for expr in exprs for e in sp.preorder_traversal(expr)
                       if e.free_symbols and not isinstance(e, sp.Symbol)
                       and (shape := broadcast_shapes(*(shapes[x] for x in e.free_symbols)))
                       is not None]  # always (the node's inputs broadcast)
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


class Params(Mapping[str, np.ndarray]):
    """A program's parameters by name (those it holds, not those fed as inputs).

    ``params["W"]`` is the live array that training steps update in place;
    ``params["W"] = value`` copies ``value`` into it, checked as a feed is (a FeedError names
    the parameter, the shape declared and the shape given), because the generated code reads
    the array it holds: binding a new one would not reach it.
    """

    def __init__(self, signature: Signature) -> None:
        self._nodes = {leaf_name(n): n for n in signature.owned if n.op.name == "param"}
        self._inputs = {leaf_name(n) for n in signature.inputs}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._nodes[name].array

    def __setitem__(self, name: str, value: Any) -> None:
        node = self._nodes.get(name)
        if node is None:
            held = f"it holds {list(self._nodes)}"
            if name in self._inputs:
                raise FeedError(f"params[{name!r}]: {name!r} is an input of the program, fed "
                                f"at each call, not a parameter it holds ({held})")
            raise FeedError(f"params[{name!r}]: the program has no parameter {name!r} ({held})")
        np.copyto(node.array, FeedPlan().check(node, value, {}))

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k!r}: {v.shape}" for k, v in self.items())
        return f"<graphc.Params {{{shapes}}}>"


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
