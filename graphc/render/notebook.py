"""Graphs that show themselves in Jupyter: a node, or a list of nodes, displays as its graph
(an SVG drawn by ``gc.render``, without values), as a ``graphviz.Digraph`` already does.

The nodes' class belongs to graphc's IR, which knows nothing of figures; so instead of a
``_repr_svg_`` method on it, graphc registers an SVG formatter for it with IPython when it
is imported inside a running IPython (a notebook's kernel) — IPython's own way of showing a
type it does not own (``formatters[...].for_type``). Elsewhere nothing happens.
"""

from __future__ import annotations

import sys
from typing import Any

from graphc.ir.node import Node
from graphc.render.dot import dot_available
from graphc.render.draw import render


def node_svg(obj: Any) -> str | None:
    """The SVG of a node's graph, or of the graph of a list or tuple of nodes; None for
    anything else (IPython then shows it as it would have) or without Graphviz's ``dot``."""
    nodes = [obj] if isinstance(obj, Node) else obj
    if not isinstance(nodes, (list, tuple)) or not nodes or not dot_available():
        return None
    if not all(isinstance(n, Node) for n in nodes):
        return None
    return render(list(nodes)).pipe(format="svg").decode("utf-8")


def register(shell: Any = None) -> bool:
    """Register ``node_svg`` with the running IPython (or ``shell``); whether there was one."""
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    svg = shell.display_formatter.formatters["image/svg+xml"]
    for kind in (Node, list, tuple):
        svg.for_type(kind, node_svg)
    return True
