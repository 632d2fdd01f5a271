"""Safe, readable variable names for generated code.

Every name in a generated module passes through ``NameTable``: a user's node name that is
not an identifier, is a keyword, shadows something the module uses, or repeats another name
is rewritten, so no name can inject code into the module.
"""

from __future__ import annotations

import builtins
import keyword
import re

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
