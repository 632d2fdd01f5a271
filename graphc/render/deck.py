"""``render_deck``: the backpropagation frames of ``render_steps`` as one multi-page PDF, one
step per page, ready to drop into a slide deck.

Graphviz writes each frame as a PDF page; pypdf joins the pages (a PDF is not a format to
concatenate by hand). pypdf is imported only here, so the rest of graphc does not need it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence

from graphc.ir.node import Node
from graphc.render.dot import INSTALL, RenderError, dot_available, output_path
from graphc.render.steps import render_steps


def render_deck(outputs: Node | Sequence[Node], feeds: Mapping[Node | str, object],
                path: str | os.PathLike, digits: int | None = None, *,
                decimals: int = 2) -> str:
    """Write the frames of ``render_steps(outputs, feeds)`` into one PDF at ``path`` (".pdf"
    is added where missing), page k being backward step k, and return its path. Numbers
    are written as the frames write them: to ``decimals`` (the slides' 0.73, -0.20), or to
    ``digits`` significant digits."""
    try:
        from pypdf import PdfWriter
    except ImportError as err:
        raise RenderError("a multi-page PDF needs pypdf: pip install pypdf") from err
    if not dot_available():
        raise RenderError(f"Graphviz's `dot` program was not found, so no PDF was written; "
                          f"{INSTALL}")
    out = output_path(path, "pdf")
    with tempfile.TemporaryDirectory(prefix="graphc-deck-") as scratch:
        frames = render_steps(outputs, feeds, format="pdf", digits=digits, decimals=decimals,
                              path_prefix=os.path.join(scratch, "step"))
        writer = PdfWriter()
        for frame in frames:
            writer.append(frame)
        folder = os.path.dirname(out)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(out, "wb") as f:
            writer.write(f)
    return out
