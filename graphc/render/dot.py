"""From a scene to Graphviz: the ``graphviz.Digraph`` (which shows itself in Jupyter) and the
files written from it with the ``dot`` program.

Where ``dot`` is missing, the DOT source is still written, next to where the figure would
have gone, and the error says how to install Graphviz and finish the job by hand.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import graphviz

from graphc.errors import GraphcError
from graphc.render import style
from graphc.render.scene import Edge, Scene, Vertex

#: A caption: lines of (text, colour or None) runs, written in a monospaced font.
Caption = Sequence[Sequence[tuple[str, str | None]]]

INSTALL = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
           "graphviz; conda: conda install graphviz)")


class RenderError(GraphcError):
    """A figure could not be drawn; the message says why and what to do."""


@dataclass(frozen=True)
class View:
    """One frame of backpropagation: gradients known after ``step`` are shown (those
    computed at ``step`` highlighted), the node ``current`` is highlighted, and the
    ``caption`` under the graph writes out the step."""

    step: int
    current: int | None
    caption: Caption


def to_digraph(scene: Scene, rankdir: str = "LR", view: View | None = None,
               format: str = "svg", title: str | None = None) -> graphviz.Digraph:  # noqa: A002
    """The Graphviz graph of a scene, optionally as one frame of a step-by-step sequence,
    or with a ``title`` line under it."""
    graph = graphviz.Digraph("graphc", format=format,
                             graph_attr={**style.GRAPH, "rankdir": rankdir},
                             node_attr=style.NODE, edge_attr=style.EDGE)
    for vertex in scene.vertices:
        main = next((text for text, role in vertex.lines if role == "main"), "")
        attrs = style.vertex_attrs(vertex.kind, main, scene.scalar)
        if view is not None and view.current in vertex.members and vertex.kind != "branch":
            attrs.update(color=style.HIGHLIGHT, penwidth="3")
        graph.node(vertex.id, label=_vertex_label(vertex), **attrs)
    for edge in scene.edges:
        attrs = {}
        label = _edge_label(edge, view)
        if label:
            attrs["label"] = label
        if edge.backward:
            attrs["color"] = style.GRADIENT
        if view is not None and edge.consumer is not None and edge.consumer == view.current:
            attrs.update(color=style.HIGHLIGHT, penwidth="2.5")
        graph.edge(edge.tail, edge.head, **attrs)
    if view is not None:
        graph.attr(label=_caption_label(view.caption), labelloc="b", labeljust="l")
    elif title:
        graph.attr(label=f"<{_font(title, style.MUTED, style.SUB_SIZE)}>", labelloc="b")
    return graph


def _text(text: str) -> str:
    return html.escape(text, quote=False).replace("\n", "<BR/>")


def _font(text: str, color: str | None = None, size: int | None = None) -> str:
    attrs = (f' COLOR="{color}"' if color else "") + (f' POINT-SIZE="{size}"' if size else "")
    return f"<FONT{attrs}>{_text(text)}</FONT>" if attrs else _text(text)


def _vertex_label(vertex: Vertex) -> str:
    if not vertex.lines:
        return ""
    parts = []
    for text, role in vertex.lines:
        if role == "title":
            parts.append(f"<B>{_text(text)}</B>")
        elif role == "sub":
            parts.append(_font(text, style.MUTED, style.SUB_SIZE))
        else:
            parts.append(_text(text))
    return "<" + "<BR/>".join(parts) + ">"


def _edge_label(edge: Edge, view: View | None) -> str | None:
    lines = []
    value = _font(edge.value, style.GRADIENT if edge.backward else style.VALUE) \
        if edge.value is not None else ""
    if edge.argument is not None:
        value = _font(edge.argument + (" = " if value else ""), style.INK) + value
    if value:
        lines.append(value)
    if edge.grad is not None:
        color = style.GRADIENT
        if view is not None and edge.step > view.step:
            color = style.HIDDEN  # not computed yet; kept (invisible) so frames align
        elif view is not None and edge.step == view.step and view.step > 0:
            color = style.HIGHLIGHT
        lines.append(_font(edge.grad, color))
    return "<" + "<BR/>".join(lines) + ">" if lines else None


def _caption_label(caption: Caption) -> str:
    lines = []
    for runs in caption:
        # no-break spaces: Graphviz would collapse the runs of spaces that align columns
        line = "".join(_font(text.replace(" ", "\u00a0"), color) for text, color in runs)
        lines.append(line or "\u00a0")
    body = '<BR ALIGN="LEFT"/>'.join(lines) + '<BR ALIGN="LEFT"/>'
    return (f'<<FONT FACE="{style.CAPTION_FONT}" POINT-SIZE="{style.CAPTION_SIZE}">'
            f"{body}</FONT>>")


def dot_available() -> bool:
    """Whether Graphviz's ``dot`` program is on the PATH."""
    return shutil.which("dot") is not None


#: The formats a figure can be written in: Graphviz's own list (svg, png, pdf, dot, ...).
FORMATS = frozenset(graphviz.FORMATS)
#: The ones a slide usually wants, named first where a format is refused.
COMMON_FORMATS = ("svg", "png", "pdf")

#: The widest a figure may be, either way, and still sit on a slide: 3:1.
SLIDE_RATIO = 3.0


def figure_format(path: str | os.PathLike | None, format: str | None) -> str:  # noqa: A002
    """The format to write: ``format`` where given, else the extension of ``path``
    ("f.png": png), else svg. RenderError for a format Graphviz does not write."""
    if format is None:
        name = os.fspath(path) if path else ""
        ext = os.path.splitext(name)[1].lstrip(".").lower()
        if not ext:
            return "svg"
        format, where = ext, f" (the extension of {name})"
    else:
        where = ""
    if format not in FORMATS:
        others = sorted(FORMATS - set(COMMON_FORMATS))
        raise RenderError(f"Graphviz cannot write figures as {format!r}{where}; formats: "
                          f"{', '.join(COMMON_FORMATS)} (and {', '.join(others[:6])}, ...)")
    return format


def layout_size(graph: graphviz.Digraph) -> tuple[float, float]:
    """The width and height (inches) of the figure of ``graph``: its layout, from Graphviz's
    plain output, and the padding around it."""
    first = graph.pipe(format="plain").decode("utf-8").split("\n", 1)[0].split()
    pad = 2 * float(style.GRAPH["pad"])
    return float(first[2]) + pad, float(first[3]) + pad


def aspect(size: tuple[float, float]) -> float:
    """How far from square a layout is, either way: 3.0 for 3:1 and for 1:3."""
    width, height = size
    return max(width / height, height / width)


def slide_direction(draw: Callable[[str], graphviz.Digraph]) -> str:
    """The rank direction for a slide: left to right, as the lectures draw graphs, where
    that stays within ``SLIDE_RATIO``; else top to bottom where that does; else whichever
    is nearer square. Without ``dot`` (no layout to measure), left to right."""
    if not dot_available():
        return "LR"
    ratios = {direction: aspect(layout_size(draw(direction))) for direction in ("LR", "TB")}
    for direction, ratio in ratios.items():
        if ratio <= SLIDE_RATIO:
            return direction
    return min(ratios, key=ratios.__getitem__)


def output_path(path: str | os.PathLike, format: str) -> str:  # noqa: A002
    """``path`` with the format's extension: "fig" and "fig.svg" both give "fig.svg"."""
    path = os.fspath(path)
    return path if path.endswith(f".{format}") else f"{path}.{format}"


def save_source(graph: graphviz.Digraph, path: str) -> str:
    """Write the DOT source of ``graph`` next to the figure ``path``; returns its path."""
    source = os.path.splitext(path)[0] + ".dot"
    _makedirs(source)
    with open(source, "w", encoding="utf-8") as f:
        f.write(graph.source)
    return source


def missing_dot(sources: Sequence[str], fmt: str) -> RenderError:
    """The error for figures that could only be written as DOT sources."""
    first = sources[0]
    target = os.path.splitext(first)[0] + f".{fmt}"
    more = f" (and {len(sources) - 1} more)" if len(sources) > 1 else ""
    return RenderError(f"Graphviz's `dot` program was not found, so the graph was written as "
                       f"DOT source to {first}{more} instead of {fmt.upper()}; {INSTALL}, then "
                       f"run: dot -T{fmt} {first} -o {target}")


def write(graph: graphviz.Digraph, path: str | os.PathLike, format: str = "svg") -> str:  # noqa: A002
    """Draw ``graph`` into ``path`` (the format's extension is added where missing) and
    return the file's path; without ``dot``, write the .dot source and raise RenderError."""
    out = output_path(path, format)
    if not dot_available():
        raise missing_dot([save_source(graph, out)], format)
    data = graph.pipe(format=format)
    _makedirs(out)
    with open(out, "wb") as f:
        f.write(data)
    return out


def _makedirs(path: str) -> None:
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
