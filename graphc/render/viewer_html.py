"""The viewer page's HTML pieces: the figure as inline SVG marked for the script, the code
panel, the data as safe JSON, and which lines of a generated module compute which node."""

from __future__ import annotations

import html
import io
import json
import re
import tokenize
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from graphc.render import style
from graphc.render.dot import to_digraph
from graphc.render.scene import Scene

#: The policy every page carries: no request of any kind, only its own inline style and script.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'")

SVG_NS = "http://www.w3.org/2000/svg"


#: A statement's last line carries the printer's comment: its shape, two spaces, its op.
_SHAPE_COMMENT = re.compile(r"#\s*\([^)]*\)\s{2}\S")
_TARGET = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\[[^\]]*\])*\s*(?:[-+*/@]|//)?=(?!=)")


def statement_lines(source: str, names: Mapping[int, str]
                    ) -> tuple[dict[int, list[int]], dict[str, list[int]]]:
    """The lines (0-based) of the statement that computes each node of a generated module,
    by node id, and by the variable the statement assigns.

    The printer writes one statement per node, closed by a line that carries the node's
    shape and op in a comment (``# (batch, 10)  @``) and assigns the node's variable
    (``prog.names``); lines before it since the last such line, blank line or comment line
    are part of it (a planned softmax takes several)."""
    lines = source.splitlines()
    by_target: dict[str, list[int]] = {}
    start = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "def ", '"""')):
            start = None
            continue
        if start is None:
            start = i
        if _SHAPE_COMMENT.search(line):
            target = _TARGET.match(line)
            if target:
                by_target.setdefault(target.group(1), list(range(start, i + 1)))
            start = None
    by_id = {k: by_target[n] for k, n in names.items() if n in by_target}
    return by_id, by_target


def _comments(source: str) -> dict[int, int]:
    """Where each line's comment starts (0-based line: column), found by Python's tokenizer
    so that a ``#`` inside a string is not taken for one."""
    found: dict[int, int] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                found[token.start[0] - 1] = token.start[1]
    except (tokenize.TokenError, IndentationError):
        pass
    return found


def figure_svg(scene: Scene) -> str:
    """The figure of ``scene`` drawn by Graphviz as inline SVG, each box marked with its
    vertex (``data-vertex``), each arrow with its index in ``scene.edges`` (``data-edge``),
    and each arrow's texts as its value or its gradient (class ``value``/``grad``)."""
    raw = to_digraph(scene).pipe(format="svg")
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ET.fromstring(raw)
    q = f"{{{SVG_NS}}}"
    for attr in ("width", "height"):
        root.attrib.pop(attr, None)
    order: dict[tuple[str, str], list[int]] = {}
    for k, edge in enumerate(scene.edges):
        order.setdefault((edge.tail, edge.head), []).append(k)
    for g in root.iter(f"{q}g"):
        title = g.find(f"{q}title")
        kind = g.get("class")
        if title is None:
            continue
        text = title.text or ""
        g.remove(title)
        if kind == "node":
            g.set("data-vertex", text)
        elif kind == "edge":
            tail, _, head = text.partition("->")
            k = order[(tail, head)].pop(0)
            g.set("data-edge", str(k))
            edge = scene.edges[k]
            for t in g.iter(f"{q}text"):
                grad = (edge.grad is not None and not edge.backward
                        and t.get("fill") == style.GRADIENT)
                t.set("class", "grad" if grad else "value")
    for g in root.iter(f"{q}g"):  # the graph's own title too: no tooltips over the figure
        for title in g.findall(f"{q}title"):
            g.remove(title)
    return ET.tostring(root, encoding="unicode")


def code_html(k: int, source: str, heading: str) -> str:
    """A stage's generated code as the page shows it: a line element per line (its number in
    ``data-line``, for the node<->line highlighting), comments set apart."""
    comments = _comments(source)
    lines = []
    for i, line in enumerate(source.splitlines()):
        col = comments.get(i)
        body = (html.escape(line) if col is None else html.escape(line[:col])
                + f'<span class="cm">{html.escape(line[col:])}</span>')
        lines.append(f'<span class="ln" data-line="{i}">{body or " "}</span>')
    return (f'<pre class="code" data-stage="{k}" hidden aria-label="{html.escape(heading)}">'
            + "".join(lines) + "</pre>")


def json_script(data: object) -> str:
    """``data`` as JSON that can sit in a script element: nothing in it can end the element
    or open a comment (``</script>``, ``<!--``), whatever the graph's names."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
