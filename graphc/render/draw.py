"""``render``: one figure of a graph, with each edge's value and gradient."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import graphviz

from graphc.feeds import resolve_feeds
from graphc.ir.graph import topological_order
from graphc.ir.node import Node
from graphc.render.collapse import Collapse
from graphc.render.dot import figure_format, slide_direction, to_digraph, write
from graphc.render.labels import Numbers
from graphc.render.scene import build_scene, fanned_consumers
from graphc.render.stages import figure
from graphc.render.values import annotate

#: Graphviz's rank directions, and "auto" (a slide's shape: see ``slide_direction``).
RANKDIRS = ("LR", "TB", "RL", "BT", "auto")


def render(outputs: Node | Sequence[Node], feeds: Mapping[Node | str, object] | None = None,
           path: str | os.PathLike | None = None, grads: bool = True, stage: str = "source",
           format: str | None = None, digits: int | None = None,  # noqa: A002
           rankdir: str = "LR", collapse: Collapse = None, *, decimals: int = 2,
           title: str | None = None) -> graphviz.Digraph:
    """Draw the graph of ``outputs``; with ``feeds`` ({input node or name: value}), every
    edge from u to its consumer carries u's value (green, above) and, with ``grads``, the
    gradient of the output with respect to u (red, below). Numbers are written as the
    lecture slides write them, to ``decimals`` decimals (1.37, -0.20; 9.7e-4 below 0.01),
    or with ``digits`` to that many significant digits (1.4, -0.2). A parameter fed is
    drawn at the value fed (its stored value stays as it is); a key that names nothing the
    outputs depend on is a FeedError. In a graph of numbers, an arrow out of an op the user
    assigned to a variable carries its name (``q = 3`` for ``q = x + y``).

    The gradient is that of the output when it is a single scalar, else of the sum of the
    outputs. Where a value fans out, a dot marks the branch: the arrow into it carries the
    whole gradient as the sum of the branches (``-4 = -2 + -2``), each branch its part.

    ``stage`` is "source" (the graph as declared), "autodiff" (with the nodes ``gc.grad``
    builds, in red, whose values are the gradients) or "optimized" (after the passes of
    ``optimize=2``; a fused node is labelled with its expression). ``collapse`` = "layers"
    or {name_prefix: label} draws each layer or named subgraph as one box. ``rankdir`` is
    Graphviz's ("LR" left to right, "TB" top to bottom), or "auto": left to right where the
    figure stays within 3:1, else top to bottom (a slide's shape). ``title`` is a line
    written under the figure.

    Returns the ``graphviz.Digraph`` (in Jupyter it shows itself); with ``path``, also
    writes the figure there, in ``format`` or else the format of the path's extension
    ("f.png" is a PNG; "f" is "f.svg"). Without Graphviz's ``dot`` it writes the .dot source
    and raises ``RenderError`` saying how to install it.
    """
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    fmt = figure_format(path, format)
    outputs = [outputs] if isinstance(outputs, Node) else list(outputs)
    given = resolve_feeds(feeds, topological_order(outputs), "render")
    fig = figure(outputs, stage)
    notes = None
    if feeds is not None:
        with_grads = grads and fig.gradient_edges
        split = fanned_consumers(fig) if with_grads and collapse is None else ()
        notes = annotate(fig.outputs, fig.nodes, given, grads=with_grads, split=split)
    scene = build_scene(fig, notes, Numbers(decimals, digits), collapse)

    def draw(direction: str) -> graphviz.Digraph:
        return to_digraph(scene, direction, format=fmt, title=title)

    graph = draw(slide_direction(draw) if rankdir == "auto" else rankdir)
    if path is not None:
        write(graph, path, fmt)
    return graph
