"""Lecture-quality figures of graphc graphs, drawn with Graphviz.

``render`` draws a graph with every edge's forward value and gradient; ``render_steps``
draws backpropagation one step per frame; in Jupyter a node shows its graph (``notebook``).
``python -m graphc.render.gallery`` redraws docs/gallery from the examples.
"""

from graphc.render import notebook
from graphc.render.dot import RenderError
from graphc.render.draw import render
from graphc.render.steps import render_steps

notebook.register()  # in Jupyter, a node shows its graph

__all__ = ["RenderError", "render", "render_steps"]
