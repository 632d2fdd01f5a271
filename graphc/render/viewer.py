"""``view``: the backprop viewer, one self-contained HTML page that steps an audience through
the forward and the backward pass of a graph, with the numbers and the generated code.

The page holds, for each stage (the graph as declared, after autodiff, after the optimizing
passes), graphc's own Graphviz figure drawn once with every value and gradient, and a list
of steps: forward evaluation node by node, the seed of the backward pass, then one step per
node back to the inputs ("local gradient × upstream = result"). The script shows on the
figure what is known at the step, and highlights the node and its line of generated code.
Everything (SVG, style, script, data) is inline, so the page opens offline; a
Content-Security-Policy forbids it any request.

Numbers are written as the lecture slides write them, to two decimals (0.73, -0.20), rather
than to two significant digits as ``gc.render``'s figures are.
"""

from __future__ import annotations

import functools
import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import sympy as sp

from graphc.compiler import compile
from graphc.feeds import resolve_feeds
from graphc.ir.graph import Graph, topological_order
from graphc.ir.node import Node
from graphc.ops.elementwise import local_derivative
from graphc.passes.autodiff import grad
from graphc.passes.stabilize import stabilize
from graphc.render.collapse import Collapse, group_nodes
from graphc.render.dot import RenderError, dot_available
from graphc.render.labels import (
    LEAVES,
    assigned_names,
    derivative_text,
    format_array,
    node_name,
    objective_name,
    op_label,
    partial,
)
from graphc.render.labels import title as node_title
from graphc.render.scene import Scene, backward_steps, build_scene
from graphc.render.stages import STAGES, Figure, figure
from graphc.render.steps import local_derivatives
from graphc.render.values import Annotations, adjoints, annotate, objective
from graphc.render.viewer_assets import CSS, JS
from graphc.render.viewer_html import CSP, code_html, figure_svg, json_script, statement_lines

STAGE_LABELS = {"source": "Declared", "autodiff": "After autodiff", "optimized": "Optimized"}

#: How many leaves the first step lists with their values.
START_ROWS = 8


def view(outputs: Node | Sequence[Node], feeds: Mapping[Node | str, object],
         path: str | os.PathLike | None = None, *, title: str = "graphc",
         decimals: int = 2) -> str:
    """The backprop viewer of ``outputs`` at ``feeds`` ({input node or name: value}, as
    ``gc.render`` takes them): one self-contained HTML page, returned and, with ``path``,
    written there. ``title`` heads the page; numbers are written to ``decimals`` decimals.

    The page steps through forward evaluation node by node, then backward, for each stage
    (declared, after autodiff, optimized), with the generated NumPy code of the stage
    beside the figure. A network whose parameters are named by layer (``W1``, ``b1``...)
    opens collapsed into one box per layer; clicking a box expands its layer. Needs
    Graphviz's ``dot`` (RenderError says how to install it).
    """
    if not dot_available():
        raise RenderError("view: Graphviz's `dot` program was not found; install Graphviz "
                          "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
                          "graphviz; conda: conda install graphviz)")
    outputs = [outputs] if isinstance(outputs, Node) else list(outputs)
    given = resolve_feeds(feeds, topological_order(outputs), "view")
    built = [_build_stage(outputs, given, stage, decimals) for stage in STAGES]
    inputs = [n for n in topological_order(outputs) if n.op.name == "input"]
    # compiled last: compiling names nodes after the user's variables, which would change
    # how the figures above call them
    stages = [_with_code(stage, outputs, inputs) for stage in built]
    page = _page(stages, title)
    if path is not None:
        folder = os.path.dirname(os.fspath(path))
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    return page


# --- numbers ---------------------------------------------------------------------------------
def slide_number(x: float, decimals: int = 2) -> str:
    """``x`` as a slide writes it, to ``decimals`` decimals: 0.73, -0.20, 6.00; a number too
    small or too large for that in scientific notation (1.2e-05, 3.4e+06)."""
    x = float(x)
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x != 0 and (abs(x) < 0.5 * 10.0 ** -decimals or abs(x) >= 1e5):
        return f"{x:.{max(decimals - 1, 1)}e}"
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def slide_array(value: np.ndarray, decimals: int = 2, multiline: bool = False) -> str:
    """A value as the viewer writes it: a number, a small tensor's entries, or a summary of
    a large one (``4×128: mean 0.12, norm 3.40``); integers (labels) as integers. The
    figures' ``format_array``, with the viewer's numbers."""
    return format_array(value, functools.partial(slide_number, decimals=decimals), multiline)


# --- one stage -------------------------------------------------------------------------------
@dataclass
class _Variant:
    """One drawing of a stage's figure: all nodes, or some layers collapsed into boxes."""

    label: str
    scene: Scene
    ends: list[tuple[Node, Node | None]]  # each edge's producer and consumer
    expand: dict[str, int]  # group box -> the variant that opens it


@dataclass
class _Stage:
    key: str
    fig: Figure
    notes: Annotations
    forward: list[Node]
    backward: list[Node]
    steps: list[dict]
    variants: list[_Variant]
    code: dict = field(default_factory=dict)


def _build_stage(outputs: list[Node], given: Mapping[Node, object], stage: str,
                 decimals: int) -> _Stage:
    fig = figure(outputs, stage)
    ops = [n for n in fig.nodes if n.inputs]
    grads = fig.gradient_edges
    local = {n.id: local_derivatives(n) for n in ops
             if grads and n.op.name == "elementwise"}
    extra = [d for ds in local.values() for d in ds if d is not None]
    notes = annotate(fig.outputs, fig.nodes, given, grads=grads, split=ops if grads else (),
                     extra=extra)
    backward = backward_steps(fig.nodes, notes.grads) if grads else []
    steps = _steps(fig, notes, ops, backward, local, decimals)
    groups = group_nodes(fig.nodes, "layers")
    labels = list(dict.fromkeys(groups.values()))
    collapses: list[tuple[str, Collapse]] = [("all nodes", None)]
    if labels:
        collapses = [("by layers", "layers"), ("all nodes", None)]
        for label in labels:
            others = {n.name: g for n in fig.nodes if n.op.name == "param" and n.name
                      for g in [groups.get(n.id)] if g is not None and g != label}
            collapses.append((f"{label} open", others or None))
    variants = []
    for label, collapse in collapses:
        scene = build_scene(fig, notes, collapse=collapse)
        ends = _edge_ends(scene, fig)
        scene = _relabel(scene, ends, fig, notes, decimals, bool(group_nodes(fig.nodes, collapse)))
        variants.append(_Variant(label, scene, ends, {}))
    for variant in variants:
        for vertex in variant.scene.vertices:
            if vertex.kind == "group":
                title = vertex.lines[0][0]
                variant.expand[vertex.id] = 2 + labels.index(title)
    return _Stage(stage, fig, notes, ops, backward, steps, variants)


def _edge_ends(scene: Scene, fig: Figure) -> list[tuple[Node, Node | None]]:
    """The node whose value each arrow carries, and the node it feeds (None: an output's
    arrow, or the arrow into a branch point)."""
    by_id = {n.id: n for n in fig.nodes}
    members = {v.id: set(v.members) for v in scene.vertices}
    ends: list[tuple[Node, Node | None]] = []
    for edge in scene.edges:
        consumer = by_id.get(edge.consumer) if edge.consumer is not None else None
        if edge.tail[0] in "nb":
            producer = fig.nodes[int(edge.tail[1:])]
        elif edge.head.startswith("t"):
            producer = fig.terminals[int(edge.head[1:])].node
        else:  # out of a layer's box, into the node that reads it
            assert consumer is not None
            producer = next(x for x in consumer.inputs if x.id in members[edge.tail])
        ends.append((producer, consumer))
    return ends


def _relabel(scene: Scene, ends: list[tuple[Node, Node | None]], fig: Figure,
             notes: Annotations, decimals: int, grouped: bool) -> Scene:
    """The scene with its numbers written as slides write them: each arrow's value and
    gradient recomputed from ``notes`` (as the scene found them) in the viewer's format."""
    def text(a: np.ndarray) -> str:
        return slide_array(a, decimals, multiline=True)

    seen: dict[tuple[str, str], int] = {}
    parts: list[np.ndarray | None] = []
    for edge, (u, v) in zip(scene.edges, ends):
        if edge.grad is None or u.id not in notes.grads:
            parts.append(None)
        elif v is None and edge.head.startswith("t"):
            parts.append(notes.seeds.get(u.id, np.zeros_like(notes.grads[u.id])))
        elif v is None or grouped:
            parts.append(notes.grads[u.id])  # into a branch point, or into a layer's box
        else:
            k = seen[(edge.tail, edge.head)] = seen.get((edge.tail, edge.head), -1) + 1
            index = [i for i, x in enumerate(v.inputs) if x.id == u.id][k]
            part = notes.branch(v, index)
            parts.append(np.zeros_like(notes.grads[u.id]) if part is None else part)
    edges = []
    for edge, (u, _), part in zip(scene.edges, ends, parts):
        grad = None if part is None else text(part)
        if edge.head.startswith("b") and part is not None:
            branches = [p for e, p in zip(scene.edges, parts)
                        if e.tail == edge.head and p is not None]
            grad = text(part)
            if np.size(part) == 1:
                grad += " = " + " + ".join(text(p) for p in branches)
            else:
                grad += f" (sum of {len(branches)} branches)"
        value = None if edge.value is None else text(notes.values[u.id])
        edges.append(replace(edge, value=value, grad=grad))
    return Scene(scene.vertices, edges, scene.scalar)


# --- steps -----------------------------------------------------------------------------------
def _steps(fig: Figure, notes: Annotations, forward: list[Node], backward: list[Node],
           local: dict[int, list[Node | None]], decimals: int) -> list[dict]:
    """The steps of one stage, as the page shows them: a heading, a table, and the node."""
    names = assigned_names(fig.nodes)
    position = {n.id: k for k, n in enumerate(fig.nodes)}

    def num(a: np.ndarray) -> str:
        return slide_array(a, decimals)

    def step(kind: str, heading: str, node: Node | None, rows: list[list[str]],
             columns: list[str] | None = None, classes: list[str] | None = None) -> dict:
        return {"kind": kind, "heading": heading, "rows": rows, "columns": columns,
                "classes": classes, "node": None if node is None else position[node.id]}

    leaves = [n for n in fig.nodes if n.op.name in ("input", "param")]
    rows = [[node_title(n, names), "=", num(notes.values[n.id])] for n in leaves[:START_ROWS]]
    out = [step("start", "The graph, with the inputs' values" if leaves else "The graph", None,
                rows, classes=["", "op", "value"])]
    for k, v in enumerate(forward, 1):
        what = "backward node" if v.role == "backward" else "forward"
        heading = (f"{what.capitalize()} {k} of {len(forward)}: {op_label(v, names)} gives "
                   f"{node_title(v, names)} = {num(notes.values[v.id])}")
        rows = [[node_title(x, names, 16), "=", num(notes.values[x.id])] for x in v.inputs]
        out.append(step("forward", heading, v, rows, ["input", "", "value"],
                        ["", "op", "value"]))
    if not backward:
        return out
    objective_text = objective_name(fig.outputs, names)
    floats = [o for o in fig.outputs if o.dtype.kind == "f"]
    seed = (f"Backward pass: start from ∂{objective_text}/∂{objective_text} = "
            f"{slide_number(1.0, decimals)}" if objective_text != "L" else
            "Backward pass: L is the sum of the outputs, so ∂L/∂out = 1 for each entry")
    out.append(step("seed", seed, floats[0] if len(floats) == 1 else None, []))
    columns = ["", "local gradient", "", "upstream", "", "result"]
    classes = ["", "", "op", "upstream", "op", "result"]
    for k, v in enumerate(backward, 1):
        upstream = num(notes.grads[v.id])
        heading = (f"Backward {k} of {len(backward)}: back through {op_label(v, names)}, "
                   f"{node_title(v, names)} = {num(notes.values[v.id])}")
        rows = []
        for i, x in enumerate(v.inputs):
            result = notes.branch(v, i)
            if result is None:
                continue
            rows.append([partial(objective_text, node_title(x, names, 16)),
                         _local_text(v, i, notes, local, names, decimals), "×", upstream,
                         "=", num(result)])
        out.append(step("backward", heading, v, rows, columns, classes))
    return out


def _local_text(v: Node, i: int, notes: Annotations, local: dict[int, list[Node | None]],
                names: dict[int, str], decimals: int) -> str:
    """The local gradient of ``v`` with respect to its ``i``-th input: its formula and its
    value for an elementwise op (``x0 = -1.00``), else the Jacobian it multiplies by."""
    d = local.get(v.id, [None] * len(v.inputs))[i]
    if d is None:
        return f"Jacobian of {op_label(v, names)}"
    value = slide_array(notes.extra[d.id], decimals)
    expr = local_derivative(v.attrs["expr"], i)
    if isinstance(expr, sp.Basic) and expr.is_number:
        return value
    return f"{derivative_text(expr, v, names)} = {value}"


def _with_code(stage: _Stage, outputs: list[Node], inputs: list[Node]) -> _Stage:
    """Compile the stage's graph and map its nodes to the lines that compute them: the
    declared graph and the autodiff graph one statement per node (``optimize=0``, the node
    ids are those of the figure), the optimized stage as ``gc.compile`` writes it at
    ``optimize=2`` (matched by variable, the passes having made new nodes)."""
    fig = stage.fig
    wrt = [n for n in fig.nodes if n.op.name in ("input", "param") and n.dtype.kind == "f"]
    gradient_of: dict[int, Node] = {}
    if stage.key == "source":
        y = objective(outputs)
        gradient_of = adjoints(y) if y is not None else {}
        extra = [gradient_of[x.id] for x in wrt if x.id in gradient_of]
        for x, g in zip([x for x in wrt if x.id in gradient_of], extra):
            if g.name is None and g.role == "backward":
                g.name = f"d_{x.name}"  # as gc.grad names the gradients it returns
        prog = compile(outputs + extra, inputs, optimize=0)
        heading = "generated code, optimize=0: one statement per node"
    elif stage.key == "autodiff":
        prog = compile([t.node for t in fig.terminals], inputs, optimize=0)
        heading = "generated code, optimize=0: forward and backward, one statement per node"
    else:
        stable = list(stabilize(Graph(tuple(outputs))).outputs)
        y = objective(stable)
        leaves = [n for n in topological_order(stable)
                  if n.op.name in ("input", "param") and n.dtype.kind == "f"]
        prog = compile(stable + (grad(y, leaves) if y is not None and leaves else []),
                       inputs, optimize=2)
        heading = "generated code, optimize=2: fused, in-place buffers"
    by_id, by_target = statement_lines(prog.source, prog.names)
    names = assigned_names(fig.nodes)

    def lines_of(node: Node) -> list[int]:
        if node.op.name in LEAVES:
            return []
        found = by_id.get(node.id)
        if found is None and stage.key == "optimized":
            found = by_target.get(node_name(node, names) or "")
        return found or []

    def gradient_lines(node: Node) -> list[int]:
        if node.id in gradient_of:
            return by_id.get(gradient_of[node.id].id, [])
        return by_target.get(f"d_{node_name(node, names)}", [])

    position = {n.id: k for k, n in enumerate(fig.nodes)}
    own = {position[n.id]: lines_of(n) for n in fig.nodes}
    node_at: dict[int, int] = {}
    for node in reversed(fig.nodes):  # a gradient shared by several nodes: the nearest output
        for line in gradient_lines(node):
            node_at.setdefault(line, position[node.id])
    for k, lines in own.items():
        for line in lines:
            node_at[line] = k
    for step in stage.steps:
        if step["kind"] == "backward":
            node = fig.nodes[step["node"]]
            step["code"] = sorted({line for x in node.inputs for line in gradient_lines(x)})
        elif step["kind"] == "forward":
            step["code"] = own[step["node"]]
        else:
            step["code"] = []
    stage.code = {"heading": heading, "source": prog.source,
                  "lines_of": {k: v for k, v in own.items() if v}, "node_at": node_at}
    return stage


# --- the page --------------------------------------------------------------------------------
def _stage_data(stage: _Stage) -> dict:
    """What the script needs of a stage, as JSON: its steps, and for each drawing of its
    figure the vertex of each node and the step at which each number appears."""
    fig = stage.fig
    position = {n.id: i for i, n in enumerate(fig.nodes)}
    evaluated = {n.id: i for i, n in enumerate(stage.forward, 1)}
    seed = len(stage.forward) + 1
    variants = []
    for variant in stage.variants:
        members = {v.id: [position[m] for m in v.members if m in position]
                   for v in variant.scene.vertices}
        members.update({f"t{i}": [position[t.node.id]] for i, t in enumerate(fig.terminals)})
        vertex_of: dict[int, str] = {}
        for vertex in variant.scene.vertices:
            if vertex.kind != "branch":
                for m in vertex.members:
                    vertex_of.setdefault(position[m], vertex.id)
        ready = {vid: min((evaluated.get(fig.nodes[m].id, 0) for m in ms), default=0)
                 for vid, ms in members.items()}
        edges = [{"value": evaluated.get(u.id, 0),
                  "grad": None if e.grad is None or not stage.backward else seed + e.step,
                  "consumer": None if v is None else position[v.id]}
                 for e, (u, v) in zip(variant.scene.edges, variant.ends)]
        variants.append({"label": variant.label, "vertex_of": vertex_of, "members": members,
                         "ready": ready, "edges": edges, "expand": variant.expand})
    return {"key": stage.key, "label": STAGE_LABELS[stage.key], "variant": 0,
            "steps": stage.steps, "variants": variants,
            "code": {"lines_of": stage.code["lines_of"], "node_at": stage.code["node_at"]}}


def _page(stages: list[_Stage], title: str) -> str:
    data = {"stages": [_stage_data(s) for s in stages]}
    tabs = "".join(f'<button role="tab" data-stage="{k}" aria-selected="false">'
                   f"{k + 1} {STAGE_LABELS[s.key]}</button>" for k, s in enumerate(stages))
    figures = []
    for k, stage in enumerate(stages):
        for j, variant in enumerate(stage.variants):
            figures.append(f'<div class="figure" data-stage="{k}" data-variant="{j}" hidden '
                           f'aria-label="{html.escape(variant.label)}">'
                           f"{figure_svg(variant.scene)}</div>")
    code = "".join(code_html(k, s.code["source"], s.code["heading"])
                   for k, s in enumerate(stages))
    headings = "".join(f'<h2 class="code-heading" data-stage="{k}">'
                       f'{html.escape(s.code["heading"])}</h2>' for k, s in enumerate(stages))
    name = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} · graphc backprop viewer</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{name}</h1>
<div role="tablist" class="extra">{tabs}</div>
<div class="controls">
<button id="first" title="first step (Home)">«</button>
<button id="prev" title="back one step (←)">◀</button>
<input id="slider" type="range" min="0" max="0" value="0" aria-label="step">
<button id="next" title="forward one step (→)">▶</button>
<button id="last" title="last step (End)">»</button>
<span id="counter"></span>
</div>
<span class="spacer"></span>
<button id="layers" class="extra" hidden></button>
<button id="present" class="extra" title="presentation mode (F)">Present</button>
</header>
<main>
<section id="stage-panel">
{"".join(figures)}
<div id="caption" aria-live="polite"></div>
<div id="help">← → step · Home/End · 1-3 stage · F present · click a node for its code</div>
</section>
<aside id="code-panel">
{headings}
{code}
</aside>
</main>
<script type="application/json" id="graphc-data">{json_script(data)}</script>
<script>{JS}</script>
</body>
</html>
"""
