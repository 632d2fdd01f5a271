"""The look of a figure, in one place: colours, fonts and the shape of each kind of box.

Chosen for slides: 14-16 pt text, values in green above each arrow and gradients in red
below it (the convention of the CS231n backprop figures), and a distinct shape and colour
for inputs, parameters, constants, ops, outputs and autodiff's backward nodes.
"""

from __future__ import annotations

VALUE = "#22aa77"
GRADIENT = "#cc3333"
HIGHLIGHT = "#e08600"
INK = "#333333"
MUTED = "#777777"
HIDDEN = "#ffffff00"

FONT = "Helvetica"
CAPTION_FONT = "Courier"
FONT_SIZE = 16
SUB_SIZE = 12
EDGE_SIZE = 14
CAPTION_SIZE = 14

GRAPH = {
    "fontname": FONT,
    "bgcolor": "white",
    "pad": "0.25",
    "nodesep": "0.35",
    "ranksep": "0.55",
}

NODE = {"fontname": FONT, "fontsize": str(FONT_SIZE), "color": INK, "fontcolor": INK,
        "penwidth": "1.4", "margin": "0.12,0.06"}

EDGE = {"fontname": FONT, "fontsize": str(EDGE_SIZE), "color": MUTED, "arrowsize": "0.7",
        "penwidth": "1.3"}

#: Attributes by vertex kind (see ``graphc.render.scene.Vertex``).
KINDS: dict[str, dict[str, str]] = {
    "input": {"shape": "box", "style": "rounded,filled", "fillcolor": "#e3eefa",
              "color": "#4a78b5"},
    "param": {"shape": "box", "style": "filled", "fillcolor": "#fdf0d5", "color": "#c08a1e"},
    "state": {"shape": "box", "style": "filled", "fillcolor": "#eeeeee", "color": MUTED},
    "constant": {"shape": "box", "style": "dashed,rounded", "color": "#999999",
                 "fontcolor": "#555555"},
    "op": {"shape": "box", "style": "rounded,filled", "fillcolor": "white"},
    "backward": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fbe9e9",
                 "color": GRADIENT},
    "output": {"shape": "box", "style": "rounded,filled", "fillcolor": "#ece4f6",
               "color": "#6b4fa3", "peripheries": "2"},
    "gradient": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fbe9e9",
                 "color": GRADIENT, "peripheries": "2"},
    "group": {"shape": "box3d", "style": "filled", "fillcolor": "#eef2f6", "color": "#5a6b7d"},
    "branch": {"shape": "point", "width": "0.09", "color": INK},
}

#: Longest op label drawn in a circle in a lecture (scalar) graph.
CIRCLE_LABEL = 4


def vertex_attrs(kind: str, label: str, scalar: bool) -> dict[str, str]:
    """Graphviz attributes of a box of this kind; ops of a scalar graph with a short symbol
    are circles of one size, as on a lecture slide."""
    attrs = dict(KINDS[kind])
    if kind in ("op", "backward") and scalar and len(label) <= CIRCLE_LABEL:
        attrs.update(shape="circle", width="0.75", fixedsize="true")
    return attrs
