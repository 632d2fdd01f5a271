"""``render``: one figure of a graph, with each edge's value and gradient."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import graphviz

from graphc.feeds import resolve_feeds
from graphc.ir.graph import topological_order
from graphc.ir.node import Node
from graphc.render.collapse import Collapse
from graphc.render.dot import to_digraph, write
from graphc.render.scene import build_scene, fanned_consumers
from graphc.render.stages import figure
from graphc.render.values import annotate


def render(outputs: Node | Sequence[Node], feeds: Mapping[Node | str, object] | None = None,
           path: str | os.PathLike | None = None, grads: bool = True, stage: str = "source",
           format: str = "svg", digits: int = 2, rankdir: str = "LR",  # noqa: A002
           collapse: Collapse = None) -> graphviz.Digraph:
    """Draw the graph of ``outputs``; with ``feeds`` ({input node or name: value}), every
    edge from u to its consumer carries u's value (green, above) and, with ``grads``, the
    gradient of the output with respect to u (red, below), both to ``digits`` significant
    digits. A parameter fed is drawn at the value fed (its stored value stays as it is); a
    key that names nothing the outputs depend on is a FeedError.

    The gradient is that of the output when it is a single scalar, else of the sum of the
    outputs. Where a value fans out, a dot marks the branch: the arrow into it carries the
    whole gradient as the sum of the branches (``-4 = -2 + -2``), each branch its part.

    ``stage`` is "source" (the graph as declared), "autodiff" (with the nodes ``gc.grad``
    builds, in red, whose values are the gradients) or "optimized" (after the passes of
    ``optimize=2``; a fused node is labelled with its expression). ``collapse`` = "layers"
    or {name_prefix: label} draws each layer or named subgraph as one box.

    Returns the ``graphviz.Digraph`` (in Jupyter it shows itself); with ``path``, also
    writes the figure in ``format`` there (without Graphviz's ``dot``: the .dot source,
    and raises ``RenderError`` saying how to install it).
    """
    outputs = [outputs] if isinstance(outputs, Node) else list(outputs)
    given = resolve_feeds(feeds, topological_order(outputs), "render")
    fig = figure(outputs, stage)
    notes = None
    if feeds is not None:
        with_grads = grads and fig.gradient_edges
        split = fanned_consumers(fig) if with_grads and collapse is None else ()
        notes = annotate(fig.outputs, fig.nodes, given, grads=with_grads, split=split)
    graph = to_digraph(build_scene(fig, notes, digits, collapse), rankdir, format=format)
    if path is not None:
        write(graph, path, format)
    return graph
