"""Draw graphc's layers and the imports between them as docs/layers.svg.

The layers are read from the import-linter contract in pyproject.toml, the imports from the
code (grimp, which import-linter uses), so the picture is the contract as the code keeps it:
one box per layer (siblings side by side), an arrow where a module of one layer imports a
module of a lower one, labelled with how many such imports there are.

    .venv/bin/python scripts/draw_layers.py        # writes docs/layers.svg
"""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path

import graphviz
import grimp

ROOT = Path(__file__).resolve().parent.parent


def layers() -> list[list[str]]:
    """The contract's layers, top first, each a list of sibling packages."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [[p.strip() for p in layer.split("|")] for layer in contract["layers"]]


def draw() -> graphviz.Digraph:
    stack = layers()
    owner = {p: p for layer in stack for p in layer}
    graph = grimp.build_graph("graphc", include_external_packages=False)
    counts: Counter[tuple[str, str]] = Counter()
    for module in graph.modules:
        src = next((p for p in owner if module == p or module.startswith(p + ".")), None)
        for imported in graph.find_modules_directly_imported_by(module):
            dst = next((p for p in owner if imported == p or imported.startswith(p + ".")),
                       None)
            if src and dst and src != dst:
                counts[src, dst] += 1
    dot = graphviz.Digraph("layers", graph_attr={"rankdir": "TB", "nodesep": "0.3",
                                                 "ranksep": "0.45", "fontname": "Helvetica"},
                           node_attr={"shape": "box", "style": "rounded,filled",
                                      "fillcolor": "#eef3fb", "fontname": "Helvetica"},
                           edge_attr={"color": "#667788", "fontname": "Helvetica",
                                      "fontsize": "10"})
    for i, layer in enumerate(stack):
        with dot.subgraph(name=f"rank{i}", graph_attr={"rank": "same"}) as rank:
            for package in layer:
                rank.node(package, package.removeprefix("graphc."))
    for (src, dst), n in sorted(counts.items()):
        dot.edge(src, dst, label=str(n))
    return dot


if __name__ == "__main__":
    out = ROOT / "docs" / "layers"
    draw().render(out, format="svg", cleanup=True)
    print(f"wrote {out}.svg")
