"""The package's structure: no import cycle at all between graphc's modules, at module
level, inside functions or under TYPE_CHECKING. (That the layers import only downward is the
import-linter contract in pyproject.toml, which scripts/test.sh runs as ``lint-imports``.)"""

from __future__ import annotations

import grimp
import networkx as nx


def _imports() -> nx.DiGraph:
    """graphc's modules, with an edge for each import of one by another (every import
    statement counts, wherever it stands)."""
    graph = grimp.build_graph("graphc", include_external_packages=False)
    edges = nx.DiGraph()
    for module in graph.modules:
        edges.add_node(module)
        for imported in graph.find_modules_directly_imported_by(module):
            edges.add_edge(module, imported)
    return edges


def test_no_module_imports_itself_back():
    edges = _imports()
    # the package itself re-exports the public API: it imports, nothing imports it
    edges.remove_node("graphc")
    cycles = sorted(nx.simple_cycles(edges), key=len)[:5]
    assert not cycles, "import cycles (the shortest): " + "; ".join(
        " -> ".join(c + c[:1]) for c in cycles)

