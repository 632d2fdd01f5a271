"""Where in the user's code a node was declared: file, line and the line's text.

Errors point there, and the code generator names a node after the variable the user
assigned it to (``h1 = gc.relu(x @ W1 + b1)`` names the relu node ``h1``).
"""

from __future__ import annotations

import ast
import linecache
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from types import FrameType

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class SourceLocation:
    """A line of user code: file name, line number and the stripped text of the line."""

    filename: str
    lineno: int
    text: str

    def __str__(self) -> str:
        where = f"{os.path.relpath(self.filename)}:{self.lineno}" if self.filename else "?"
        return f"{where}: {self.text}" if self.text else where

    @property
    def assigned_name(self) -> str | None:
        """The variable a simple ``name = ...`` statement on this line assigns, if any."""
        return _assigned_name(self.text)


@lru_cache(maxsize=4096)
def _assigned_name(text: str) -> str | None:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    if len(tree.body) != 1:
        return None
    stmt = tree.body[0]
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        target = stmt.target
    else:
        return None
    return target.id if isinstance(target, ast.Name) else None


@lru_cache(maxsize=1024)
def _inside_graphc(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)


def caller_location() -> SourceLocation | None:
    """The innermost stack frame outside the graphc package: the user's line."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _inside_graphc(filename):
            text = linecache.getline(filename, frame.f_lineno).strip()
            return SourceLocation(filename, frame.f_lineno, text)
        frame = frame.f_back
    return None
