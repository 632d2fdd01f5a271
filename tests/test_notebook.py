"""docs/tour.ipynb runs from top to bottom in a fresh kernel (nbclient), and shows what it
says it shows: nodes and graphs as SVG, the generated code, training, the plot as an image."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TOUR = Path(__file__).resolve().parent.parent / "docs" / "tour.ipynb"


def words(svg: str) -> list[str]:
    """The text of an SVG figure, entities decoded (Graphviz writes - as &#45;)."""
    return [t.text or "" for t in ET.fromstring(svg.encode()).iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_the_tour_runs_and_shows_its_figures(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    notebook = nbformat.read(TOUR, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    results = [[o for o in c.outputs if o.output_type == "execute_result"] for c in cells]

    def shown(k: int) -> dict:
        (result,) = results[k]
        return result["data"]

    assert {"x", "+", "×", "f"} <= set(words(shown(1)["image/svg+xml"]))  # f, a node, drawn
    assert shown(2)["text/plain"] == "[-12.0, -4.0, -4.0, 3.0]"
    figure = words(shown(3)["image/svg+xml"])    # gc.render(f, feeds)
    assert {"q = ", "3", "-12"} <= set(figure)
    assert {"0.73", "1.37", "-0.20", "-0.53", "dot = "} <= set(words(shown(4)["image/svg+xml"]))
    printed = "".join(o.get("text", "") for o in cells[5].outputs)
    assert "def main(images, labels, W1, b1, W2, b2" in printed
    trained = "".join(o.get("text", "") for o in cells[6].outputs)
    assert "epoch 3/3  loss" in trained and "test accuracy" in trained
    assert "image/png" in shown(7)                # trainer.plot(), once
    assert shown(8)["text/plain"] == "True"
