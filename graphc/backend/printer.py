"""The NumPy backend: prints a scheduled graph as a readable Python module.

One statement per node (ops print themselves through ``Op.emit``), variables named after the
user's nodes, the shape in a trailing comment, and three sections: forward, backward, update.
With a memory plan, the buffers are named after what they hold (``names.name_buffers``).
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

import sympy as sp

from graphc.backend.memory import Buffer, MemoryPlan
from graphc.backend.names import BufferNames, NameTable, hint, name_buffers
from graphc.ir.graph import consumers, display_name
from graphc.ir.node import ROLES, Arrays, Node
from graphc.ir.shapes import Dim, Shape, format_shape
from graphc.ops.expr_printer import HELPER_IMPORTS, HELPERS, helpers_used
from graphc.ops.flat import offsets

COMMENT_COLUMN = 48


@dataclass
class Emitter:
    """What an op's ``emit`` may ask of the printer: names, the arrays the memory plan
    gives a node, dims and temporaries."""

    names: dict[int, str]
    table: NameTable
    dims: dict[str, str]
    #: True in a training step: ops such as dropout act only then.
    training: bool = False
    used_dims: set[str] = field(default_factory=set)
    helpers: set[str] = field(default_factory=set)
    plan: MemoryPlan = field(default_factory=MemoryPlan)
    #: The variables the step's code names the plan's buffers by.
    buffers: BufferNames = field(default_factory=lambda: BufferNames([], {}, {}, {}))

    def target(self, node: Node) -> str:
        return self.names[node.id]

    def arrays(self, node: Node) -> Arrays | None:
        placement = self.plan.placements.get(node.id)
        if placement is None:
            return None
        k = node.op.updates(node)
        out = self.buffers.out[node.id] if placement.out is not None else \
            self.names[node.inputs[k].id] if k is not None else None
        assert out is not None, "the memory plan gives a node that updates no input a buffer"
        return Arrays(out, self.buffers.arrays[node.id], placement.storage)

    def tmp(self, wanted: str) -> str:
        return self.table.fresh(wanted)

    def dim(self, d: Dim) -> str:
        if isinstance(d, int):
            return str(d)
        self.used_dims.add(d)
        return self.dims[d]

    def shape(self, shape: Shape) -> str:
        dims = [self.dim(d) for d in shape]
        return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"

    def need_helpers(self, expr: sp.Basic) -> None:
        self.helpers |= helpers_used(expr)


@dataclass
class Signature:
    """The leaves a program reads, in the order of the generated function's arguments."""

    inputs: list[Node]
    owned: list[Node]  # parameters, optimizer state and non-scalar constants the program holds
    #: For inputs that are class labels: how many classes the ops indexing with them have.
    classes: dict[int, int] = field(default_factory=dict)
    #: Flat arrays of owned parameters or state, which the program keeps those leaves as
    #: views of (graphc.backend.flat_storage).
    flats: list[Node] = field(default_factory=list)
    #: The nodes whose arrays the program passes after the inputs: the owned leaves the
    #: code reads by name, then the flats (a leaf read only through its flat array is not
    #: an argument: ``m_all``, not m_W1, m_b1, ...).
    held: list[Node] = field(default_factory=list)

    @property
    def leaves(self) -> list[Node]:
        return self.inputs + self.owned


def assign_names(schedule: Sequence[Node], signature: Signature,
                 table: NameTable) -> dict[int, str]:
    """Variable names: leaves by their names, others by the user's name, the variable the
    user assigned them to, or their op."""
    names: dict[int, str] = {}
    for leaf in signature.leaves + signature.flats:
        names[leaf.id] = table.fresh(leaf.name or "const")
    users = consumers(schedule)
    counts: dict[str, int] = {}
    for node in schedule:
        if node.id in names:
            continue
        k = node.op.updates(node)
        if k is not None:  # the updated input keeps its name
            names[node.id] = names[node.inputs[k].id]
            continue
        wanted = display_name(node, users.get(node.id, []))
        if wanted is None:
            word = hint(node.label) if node.inputs else "c"  # a number has no inputs
            if node.role != "forward":
                word = "g_" + word
            counts[word] = counts.get(word, 0) + 1
            wanted = f"{word}{counts[word]}"
        names[node.id] = table.fresh(wanted)
    return names


@dataclass(frozen=True)
class CodeOptions:
    """How to print a module: a training step or not, with numerics checks or not, and
    for a standalone file, the suffix of the .npz file its parameters are loaded from."""

    training: bool = False
    check_numerics: bool = False
    standalone_params: str | None = None


def print_module(schedule: Sequence[Node], outputs: Sequence[Node], signature: Signature,
                 header: str, options: CodeOptions = CodeOptions(),
                 plan: MemoryPlan | None = None) -> tuple[str, dict[int, str]]:
    """The module's source and the variable name (or inlined expression) of each node.

    With a memory ``plan``, the nodes it places write into buffers that the module allocates
    once per size of its named dimensions (``_allocate``) and reuses at every call, through
    ufunc calls with ``out=``.
    """
    table = NameTable()
    names = assign_names(schedule, signature, table)
    dims = _dim_sources(signature.inputs, names)
    dim_names = {d: table.fresh(d) for d in dims}
    plan = plan or MemoryPlan()
    buffers = name_buffers(schedule, plan, names, table)
    e = Emitter(names, table, dim_names, training=options.training, plan=plan, buffers=buffers)
    output_ids = {o.id for o in outputs}
    checks: list[str] = []
    body: list[str] = []
    section = None
    counts = {r: 0 for r in ROLES}
    leaf_ids = {n.id for n in signature.leaves + signature.flats}
    for node in schedule:
        if node.id in leaf_ids:
            continue
        args = [names[x.id] for x in node.inputs]
        code = node.op.emit(node, args, e)
        arrays = e.arrays(node)
        if (arrays is None and node.op.inline and node.id not in output_ids
                and isinstance(code, str)):
            names[node.id] = code if re.fullmatch(r"[\w.\[\]]+", code) else f"({code})"
            continue
        if arrays is None:
            lines = [f"{names[node.id]} = {code}"] if isinstance(code, str) else list(code)
        else:
            lines = _bound(node, names[node.id], [code] if isinstance(code, str) else code,
                           arrays.out)
        if not lines:  # its inputs computed its value where it is (a flat node's pieces)
            continue
        if node.role != section:
            section = node.role
            body.append(f"# {section}")
        counts[node.role] += 1
        comment = safe_comment(f"{format_shape(node.shape)}  {node.label}")
        if lines[-1][:1].isspace():  # the op ends in a block: say what it makes before it
            body.append(f"# {names[node.id]}: {comment}")
            body.extend(lines)
        else:
            body.extend(lines[:-1])
            body.append(_with_comment(lines[-1], comment))
        if options.check_numerics and node.dtype.kind == "f":
            checks.append(describe_node(node, names[node.id]))
            body.append(f"_check_finite({names[node.id]}, _NODES[{len(checks) - 1}])")
    allocate = _allocator(buffers, plan, e)
    prologue = [f"{e.dims[d]} = {src}" for d, src in dims.items() if d in e.used_dims]
    if buffers.variables:
        sizes = [e.dims[d] for d in dims if d in allocate.dims]
        key = _tuple(sizes)
        lookup = f"_buffers.get({key}) or _buffers.setdefault({key}, _allocate({', '.join(sizes)}))"
        targets = _wrap(_tuple([name for name, _ in buffers.variables]), " ")
        if len(targets) == 1 and len(targets[0]) + len(lookup) <= 81:
            prologue.append(f"{targets[0]} = {lookup}")
        else:
            prologue += [*targets[:-1], f"{targets[-1]} = (", f"    {lookup})"]
    results = ", ".join(names[o.id] for o in outputs)
    body = prologue + body + [f"return [{results}]"]
    if plan.buffers:
        header += "\nbuffers: " + ", ".join(
            f"{n} x {format_shape(s)} {t}" for (s, t), n in _buffer_kinds(plan).items())
    updated = {node.inputs[k].id for node in schedule
               if (k := node.op.updates(node)) is not None}
    module = _module(header, signature, names, body, e.helpers, counts, options, checks,
                     allocate.source, updated)
    return module, names


def _wrap(text: str, indent: str, first: str = "") -> list[str]:
    """``text`` in lines that fit 88 columns in a function's body, broken only after a
    comma (never inside a name, however long)."""
    return textwrap.wrap(text, 84, initial_indent=first, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def _tuple(items: Sequence[str]) -> str:
    """A tuple display: ``()``, ``(a,)``, ``(a, b)``."""
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


@dataclass(frozen=True)
class Allocator:
    """The module's ``_allocate`` function and the named dimensions its shapes use."""

    source: str
    dims: frozenset[str]


def _allocator(buffers: BufferNames, plan: MemoryPlan, e: Emitter) -> Allocator:
    """``_allocate(batch)``: every buffer of the step for one size of its named dims, made
    under its first variable, its later variables bound to it (``g_one_hot1 =
    scratch_batch_10``), a comment saying what a variable holds where its name does not."""
    if not buffers.variables:
        return Allocator("", frozenset())
    before = set(e.used_dims)
    e.used_dims = set()
    made: dict[int, str] = {}
    rows = []
    for name, k in buffers.variables:
        b = plan.buffers[k]
        row = f"    {name} = " + (made[k] if k in made else _make(b, plan, made, e))
        made.setdefault(k, name)
        holds = buffers.holds.get(name)
        rows.append(_with_comment(row, safe_comment(holds)) if holds else row)
    dims = frozenset(e.used_dims)
    e.used_dims |= before
    params = ", ".join(e.dims[d] for d in e.dims if d in dims)
    returned = _wrap(", ".join(name for name, _ in buffers.variables) + ",", " " * 8, " " * 8)
    source = "\n".join([
        "_buffers = {}",
        "",
        "",
        f"def _allocate({params}):",
        '    """The step\'s arrays for one size of its named dimensions: made at the first',
        '    call with that size, reused by every later one. An array takes a new name where',
        '    it starts to hold something new: what it held before is dead by then."""',
        *rows,
        "    return (",
        *returned,
        "    )",
    ]) + "\n"
    return Allocator(source, dims)


#: How a buffer is made: scratch, or filled with the constant it holds.
FILLS = {None: "empty", 0: "zeros", 1: "ones"}


def _make(b: Buffer, plan: MemoryPlan, made: dict[int, str], e: Emitter) -> str:
    """The expression that makes a buffer: a new array, or a view of its piece of another
    (made before it: a whole buffer comes before its pieces)."""
    if b.view_of is not None:
        whole, offset = b.view_of
        return f"{made[whole]}{piece(offset, b.shape)}"
    dtype = "bool_" if b.dtype == bool else b.dtype.name
    return f"np.{FILLS[b.fill]}({e.shape(b.shape)}, np.{dtype})"


def piece(offset: int, shape: Shape) -> str:
    """The view of a piece of a flat array, as code after its name: ``[64:192]``,
    ``[0:8192].reshape(64, 128)``."""
    size = 1
    for d in shape:
        size *= int(d)
    view = f"[{offset}:{offset + size}]"
    return view if len(shape) == 1 else f"{view}.reshape({', '.join(map(str, shape))})"


def _buffer_kinds(plan: MemoryPlan) -> dict[tuple[Shape, str], int]:
    """How many buffers of each shape and dtype the plan allocates (for the header; the
    pieces of a flat buffer are views of it, not buffers of their own)."""
    kinds: dict[tuple[Shape, str], int] = {}
    for b in plan.buffers:
        if b.view_of is None:
            kinds[b.shape, b.dtype.name] = kinds.get((b.shape, b.dtype.name), 0) + 1
    return kinds


def _bound(node: Node, name: str, lines: list[str], out: str) -> list[str]:
    """A placed node's code with its variable bound to the array ``out`` its code wrote:
    ``name = <the last call>`` where that call writes ``out``, else ``name = out`` after the
    code; nothing where the variable is that array's already, or the node updates an input
    (its variable is the input's)."""
    if name == out or node.op.updates(node) is not None:
        return list(lines)
    if lines[-1].endswith(f"out={out})") and not lines[-1][:1].isspace():
        return [*lines[:-1], f"{name} = {lines[-1]}"]
    return [*lines, f"{name} = {out}"]


def describe_node(node: Node, name: str) -> str:
    """Which node, which op, which line of the user's: for numerics errors (the generated
    ``_NODES`` table, and backend.numerics, which traces a failed check back to its node)."""
    where = f", declared at {node.location}" if node.location else ""
    return f"{node.role} node {name} (op {node.label}){where}"


CHECK_FINITE = (
    "def _check_finite(value, where):\n"
    '    """Raise at the first node whose output holds NaN or Inf (check_numerics=True)."""\n'
    "    if not np.isfinite(value).all():\n"
    "        bad = 'NaN' if np.isnan(value).any() else 'Inf'\n"
    "        raise FloatingPointError(f'{bad} produced by {where}')\n"
)


def _dim_sources(inputs: Sequence[Node], names: dict[int, str]) -> dict[str, str]:
    """Where each named dimension is read from: the first input that has it."""
    sources: dict[str, str] = {}
    for node in inputs:
        for axis, d in enumerate(node.shape):
            if isinstance(d, str) and d not in sources:
                sources[d] = f"{names[node.id]}.shape[{axis}]"
    return sources


def _with_comment(line: str, comment: str) -> str:
    pad = max(COMMENT_COLUMN - len(line) - 4, 2)
    return f"{line}{' ' * pad}# {comment}"


def _module(header: str, signature: Signature, names: dict[int, str], body: list[str],
            helpers: set[str], counts: dict[str, int], options: CodeOptions,
            checks: list[str], allocate: str, updated_ids: set[int]) -> str:
    standalone_params = options.standalone_params
    inputs = [names[n.id] for n in signature.inputs]
    held = [names[n.id] for n in signature.held]
    updated = [names[n.id] + (f" ({', '.join(names[x.id] for x in n.inputs)})" if n.inputs
                              else "") for n in signature.held if n.id in updated_ids]
    stats = ", ".join(f"{counts[r]} {r}" for r in ROLES if counts[r])
    out = [f"# {line}" for line in header.splitlines()]
    imports = sorted({line for h in helpers for line in HELPER_IMPORTS.get(h, ())})
    out += [f"# {stats or 'no'} statements.", *imports, "import numpy as np", ""]
    if standalone_params:
        out += [f"_saved = np.load(__file__[: -len('.py')] + {standalone_params!r})"]
        out += _load_saved(signature, names) + [""]
    for h in sorted(helpers):
        out += ["", HELPERS[h]]
    if allocate:
        out += ["", allocate]
    if checks:
        out += ["", "_NODES = ["] + [f"    {c!r}," for c in checks] + ["]", "", CHECK_FINITE]
    # a program's input whose name is no identifier is reached through main(**feeds)
    renamed = any(n.name != names[n.id] for n in signature.inputs)
    fn = "_main" if standalone_params and renamed else "main"
    args = inputs + ([f"{n}={n}" for n in held] if standalone_params else held)
    first = f"def {fn}("
    signature_lines = _wrap(", ".join(args) + "):", " " * len(first), first)
    doc = f"Inputs: {', '.join(inputs) or 'none'}."
    if updated and counts["update"]:
        doc += f" Updates {', '.join(updated)} in place."
    out += ["", *signature_lines, *_docstring(doc)]
    if standalone_params:  # prog(...) checks and converts its feeds; a saved module converts
        out += [f"    {names[n.id]} = np.asarray({names[n.id]}, dtype=np.{n.dtype.name})"
                for n in signature.inputs]
    out += ["    " + line if line else "" for line in body]
    if fn == "_main":
        feeds = ", ".join(f"feeds[{n.name!r}]" for n in signature.inputs)
        out += ["", "", "def main(**feeds):",
                '    """Takes the inputs by the names the program has, as prog(**feeds) does."""',
                f"    return _main({feeds})"]
    return "\n".join(out) + "\n"


def _docstring(text: str) -> list[str]:
    """A function's docstring in lines of 88 columns."""
    lines = _wrap(text, "    ", '    """')
    if len(lines) == 1 and len(lines[0]) <= 85:
        return [lines[0] + '"""']
    return [*lines, '    """']


def _load_saved(signature: Signature, names: dict[int, str]) -> list[str]:
    """A standalone module's lines that load what the program holds from its .npz: each
    array by name, and a flat array with its pieces made views of it, as the program keeps
    them."""
    in_flat = {x.id for f in signature.flats for x in f.inputs}
    lines = [f"{names[n.id]} = _saved[{names[n.id]!r}]" for n in signature.owned
             if n.id not in in_flat]
    for f in signature.flats:
        saved = ", ".join(f"_saved[{names[x.id]!r}]" for x in f.inputs)
        lines.append(f"{names[f.id]} = np.concatenate(({saved}), axis=None)")
        lines += [f"{names[x.id]} = {names[f.id]}{piece(offset, x.shape)}"
                  for x, (offset, _) in zip(f.inputs, offsets(f))]
    return lines


def safe_comment(text: str) -> str:
    """Text that cannot leave its comment line: no control characters, no line breaks."""
    return re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]", "_", text)


def header_for(outputs: Sequence[Node], optimize: int) -> str:
    loc = next((o.location for o in outputs if o.location), None)
    where = f" from {safe_comment(os.path.basename(loc.filename))}" if loc else ""
    return f"Generated by graphc{where} (optimize={optimize}). Do not edit: regenerate."
