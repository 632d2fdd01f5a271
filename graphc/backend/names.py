"""Safe, readable variable names for generated code.

Every name in a generated module passes through ``NameTable``: a user's node name that is
not an identifier, is a keyword, shadows something the module uses, or repeats another name
is rewritten, so no name can inject code into the module. A planned step's buffers are named
after what they hold, value by value (``name_buffers``), never ``buf0, buf1, ...``.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from graphc.backend.memory import MemoryPlan
from graphc.ir.node import Node
from graphc.ir.shapes import Shape
from graphc.ops import blas
from graphc.ops.expr_printer import HELPERS

#: Names the generated module itself defines or uses: its function, NumPy, its helpers and
#: private tables, and Python's builtins.
MODULE_NAMES = {"np", "main", "numpy", "_main", "_allocate", "_buffer", "_buffers",
                "_check_finite", "_NODES", "_saved"} | blas.NAMES
RESERVED = MODULE_NAMES | set(HELPERS) | set(dir(builtins))

_WORDS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow", "@": "matmul",
          "T": "transpose", ">": "gt", ">=": "ge", "neg": "neg"}


def identifier(text: str) -> str:
    """``text`` made into a Python identifier of ASCII letters, digits and underscores."""
    name = re.sub(r"[^0-9A-Za-z_]", "_", text)
    if not name or name[0].isdigit():
        name = "_" + name
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in RESERVED:
        name += "_"
    return name


def hint(label: str) -> str:
    """A short word for an op's label, to name an unnamed node after it."""
    if label in _WORDS:
        return _WORDS[label]
    word = identifier(label.rstrip("'")).strip("_")
    return word if word and len(word) <= 16 and "__" not in word else "expr"


def array_name(role: str, shape: Shape) -> str:
    """A buffer's name by its role and shape, for one that holds no value of the graph:
    ``scratch_64_128``, ``ones_batch``, ``zeros_batch_128`` (``NameTable.fresh`` makes it
    an identifier and unique)."""
    return "_".join([role, *map(str, shape)])


class NameTable:
    """Hands out unique identifiers, suffixing ``_2``, ``_3``... on collisions."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def fresh(self, wanted: str) -> str:
        base = identifier(wanted)
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


@dataclass(frozen=True)
class BufferNames:
    """The variables a planned step names its buffers by.

    The memory plan reuses a buffer once the value in it is dead, so over one step a buffer
    holds one thing after another. Each stretch of its life has a variable of its own: a
    value, with the values written over it in place after it, is named after its first value
    (``matmul1``, then ``h1 = np.maximum(matmul1, zeros_batch_128, out=matmul1)``), scratch
    after its role and shape (``scratch_64_128``), and a constant after what it holds
    (``zeros_batch_128``, ``ones_batch``). ``variables`` pairs each variable with its buffer,
    a buffer's in the order they start (the module's ``_allocate`` makes the buffer under its
    first and binds the later ones to it; ``main`` unpacks them all); ``holds`` says what a
    variable holds where that is more than its own name says; ``out`` and ``arrays`` are the
    variables each placed node's statement writes, by node id.
    """

    variables: list[tuple[str, int]]
    holds: dict[str, str]
    out: dict[int, str]
    arrays: dict[int, tuple[str, ...]]


#: The role a buffer's name gives where it holds no value of the graph, by its fill.
ARRAY_ROLES = {0: "zeros", 1: "ones", None: "scratch"}


def name_buffers(schedule: Sequence[Node], plan: MemoryPlan, names: Mapping[int, str],
                 table: NameTable) -> BufferNames:
    """The variables of ``plan``'s buffers over ``schedule`` (see ``BufferNames``); ``names``
    are the variables of the nodes, ``table`` hands out the others."""
    variables: list[tuple[str, int]] = []
    held: dict[str, list[str]] = {}  # variable -> the values it holds (none: scratch)
    users: dict[str, list[str]] = {}  # variable -> the nodes it is scratch for
    stretch: dict[int, str] = {}  # buffer -> the variable of the stretch it is in
    now: dict[int, str] = {}  # buffer -> the name its content goes by at this point
    value_in: dict[int, int] = {}  # buffer -> the node whose value it holds now
    scratch_in: set[int] = set()  # buffers in a stretch of scratch or a constant
    out: dict[int, str] = {}
    arrays: dict[int, tuple[str, ...]] = {}

    def start(k: int, name: str) -> str:
        variables.append((name, k))
        held[name], users[name] = [], []
        stretch[k] = now[k] = name
        value_in.pop(k, None)
        scratch_in.discard(k)
        return name

    def scratch(k: int, node: Node) -> str:
        buffer = plan.buffers[k]
        if k not in scratch_in:
            role = "mask" if buffer.fill is None and buffer.dtype == bool else \
                ARRAY_ROLES[buffer.fill]
            start(k, table.fresh(array_name(role, buffer.shape)))
            scratch_in.add(k)
        if buffer.fill is None:
            users[stretch[k]].append(names[node.id])
        return stretch[k]

    for node in schedule:
        placement = plan.placements.get(node.id)
        if placement is None:
            continue
        arrays[node.id] = tuple(scratch(k, node) for k in placement.arrays)
        k = placement.out
        if k is None:
            continue
        if node.op.updates(node) is not None:  # the update is computed here, then applied
            out[node.id] = start(k, table.fresh(f"delta_{names[node.id]}"))
            continue
        over = k in value_in and value_in[k] in {x.id for x in node.inputs}
        out[node.id] = now[k] if over else start(k, names[node.id])  # over an input dying here
        held[stretch[k]].append(names[node.id])
        now[k], value_in[k] = names[node.id], node.id
    holds = {v: ", then ".join(held[v]) if held[v] else f"scratch for {', '.join(users[v])}"
             for v, _ in variables if len(held[v]) > 1 or users[v]}
    order = sorted(range(len(variables)), key=lambda j: (variables[j][1], j))
    return BufferNames([variables[j] for j in order], holds, out, arrays)
