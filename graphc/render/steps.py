"""``render_steps``: backpropagation as a sequence of frames for a slide deck, one per op node
in the order autodiff visits them (reverse topological).

Each frame highlights the node being stepped back through and its input arrows, shows the
gradients known so far, and writes the step out under the graph: for each input, local
gradient × upstream gradient = result. Every frame has the same layout, the gradients
still to come being drawn invisibly and the caption padded to one size, so that stepping
through the frames animates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from graphc.feeds import resolve_feeds
from graphc.ir.graph import topological_order
from graphc.ir.node import Node
from graphc.ops.elementwise import OUT, arg, from_expr, local_derivative
from graphc.ops.registry import role
from graphc.render import style
from graphc.render.dot import (
    RenderError,
    View,
    dot_available,
    figure_format,
    missing_dot,
    output_path,
    save_source,
    to_digraph,
    write,
)
from graphc.render.labels import (
    Numbers,
    assigned_names,
    derivative_text,
    format_array,
    objective_name,
    op_label,
    partial,
    title,
)
from graphc.render.scene import backward_steps, build_scene
from graphc.render.stages import figure
from graphc.render.values import Annotations, annotate

#: A caption row: one cell per column (input, local gradient, x, upstream, =, result).
Row = list[str]
COLUMNS = ("", "local gradient", "", "upstream", "", "result")
COLORS = (None, None, style.MUTED, style.GRADIENT, style.MUTED, style.HIGHLIGHT)


def render_steps(outputs: Node | Sequence[Node], feeds: Mapping[Node | str, object],
                 path: str | os.PathLike | None = None, format: str | None = None,  # noqa: A002
                 digits: int | None = None, *, decimals: int = 2,
                 path_prefix: str | os.PathLike | None = None) -> list[str]:
    """Draw one frame per backward step and return the frames' paths in order. The
    gradient is that of the output (or of the sum of the outputs).

    ``feeds`` are taken as ``gc.render`` takes them (keys are nodes or names), and numbers
    are written as there (``decimals``, or ``digits`` significant digits). ``path`` names
    the figure as for ``gc.render`` ("f", "f.svg", "f.png": the extension is the format
    where ``format`` is not given); frame k goes beside it as ``f-01.svg``, ``f-02.svg``...
    ``path_prefix`` gives that stem ("f") directly.
    """
    if path is not None and path_prefix is None:
        format = figure_format(path, format)
        prefix = os.fspath(path).removesuffix(f".{format}")
    elif path is None and path_prefix is not None:
        format = figure_format(None, format)
        prefix = os.fspath(path_prefix)
    else:
        raise TypeError("render_steps: give the frames' path=, or path_prefix=, not both")
    fmt = Numbers(decimals, digits)
    outputs = [outputs] if isinstance(outputs, Node) else list(outputs)
    given = resolve_feeds(feeds, topological_order(outputs), "render_steps")
    fig = figure(outputs)
    ops = [n for n in fig.nodes if n.inputs]
    local = {n.id: local_derivatives(n) for n in ops if n.op.name == "elementwise"}
    extra = [d for ds in local.values() for d in ds if d is not None]
    notes = annotate(fig.outputs, fig.nodes, given, grads=True, split=ops, extra=extra)
    steps = backward_steps(fig.nodes, notes.grads)
    if not steps:
        raise RenderError("render_steps: no op node has a gradient to step back through "
                          "(the outputs need a floating-point value that depends on an op)")
    scene = build_scene(fig, notes, fmt)
    names = assigned_names(fig.nodes)
    tables = [_caption_rows(k, len(steps), v, notes, local, names, fmt, fig.outputs)
              for k, v in enumerate(steps, 1)]
    captions = _align(tables)
    width = max(2, len(str(len(steps))))
    graphs = [(to_digraph(scene, view=View(k, v.id, captions[k - 1]), format=format),
               output_path(f"{prefix}-{k:0{width}d}", format))
              for k, v in enumerate(steps, 1)]
    if not dot_available():
        raise missing_dot([save_source(graph, path) for graph, path in graphs], format)
    return [write(graph, path, format) for graph, path in graphs]


def local_derivatives(node: Node) -> list[Node | None]:
    """The local gradient of an elementwise node with respect to each input, as nodes:
    SymPy's derivative of its expression, written with the output where it can be
    (sigmoid' = y(1 - y)), as autodiff writes it; None for an input with no gradient."""
    expr = node.attrs["expr"]
    symbols = {arg(k): x for k, x in enumerate(node.inputs)} | {OUT: node}
    out: list[Node | None] = []
    with role("backward"):
        for i, x in enumerate(node.inputs):
            if x.dtype.kind != "f":
                out.append(None)
                continue
            out.append(from_expr("local", local_derivative(expr, i), symbols))
    return out


def _caption_rows(k: int, n: int, v: Node, notes: Annotations,
                  local: dict[int, list[Node | None]], names: dict[int, str],
                  digits: Numbers,
                  outputs: list[Node]) -> list[Row]:
    """The text of one step: a heading, then local × upstream = result for each input."""
    objective = objective_name(outputs, names)
    value = format_array(notes.values[v.id], digits)
    upstream = format_array(notes.grads[v.id], digits)
    heading = (f"step {k} of {n}: back through {op_label(v, names)}, "
               f"{title(v, names)} = {value}")
    rows: list[Row] = [[heading], list(COLUMNS)]
    for i, x in enumerate(v.inputs):
        result = notes.branch(v, i)
        if result is None:
            continue
        rows.append([partial(objective, title(x, names, 16)),
                     _local_text(v, i, notes, local, names, digits), "×", upstream, "=",
                     format_array(result, digits)])
    return rows


def _local_text(v: Node, i: int, notes: Annotations, local: dict[int, list[Node | None]],
                names: dict[int, str], digits: Numbers) -> str:
    d = local[v.id][i] if v.id in local else None
    if d is None:  # not elementwise, or an input without a gradient
        return f"Jacobian of {op_label(v, names)}"
    value = format_array(notes.extra[d.id], digits)
    text = derivative_text(local_derivative(v.attrs["expr"], i), v, names)
    return value if text == value else f"{text} = {value}"


def _align(tables: list[list[Row]]) -> list[list[list[tuple[str, str | None]]]]:
    """Every frame's caption padded to the same columns, width and number of lines, so that
    Graphviz lays every frame out the same."""
    widths = np.zeros(len(COLUMNS), dtype=int)
    for rows in tables:
        for row in rows[1:]:
            widths = np.maximum(widths, [len(c) for c in row])
    line = max(int(widths.sum()) + 2 * (len(COLUMNS) - 1),
               max(len(rows[0][0]) for rows in tables))
    height = max(len(rows) for rows in tables)
    captions = []
    for rows in tables:
        lines: list[list[tuple[str, str | None]]] = [[(" " * line, None)],
                                                     [(rows[0][0].ljust(line), None)]]
        for row in rows[1:]:
            color = style.MUTED if row is rows[1] else None
            lines.append([(cell.ljust(int(w)) + ("  " if j < len(row) - 1 else ""),
                           color or COLORS[j]) for j, (cell, w) in enumerate(zip(row, widths))])
        lines += [[(" " * line, None)]] * (height - len(rows))
        captions.append(lines)
    return captions
