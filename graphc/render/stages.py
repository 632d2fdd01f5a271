"""Which graph a figure draws: the graph as declared ("source"), the graph with autodiff's
backward nodes joined to it ("autodiff"), or the graph the optimizing passes make of it
("optimized")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from graphc.ir.graph import Graph, topological_order
from graphc.ir.node import Node
from graphc.passes.autodiff import grad
from graphc.passes.pipeline import LEVELS, run_pipeline
from graphc.render.values import objective

STAGES = ("source", "autodiff", "optimized")


@dataclass(frozen=True)
class Terminal:
    """An arrow out of the figure: an output, or (``wrt`` set) a gradient autodiff built."""

    node: Node
    wrt: Node | None = None


@dataclass(frozen=True)
class Figure:
    """The nodes a figure draws (inputs before their readers) and the arrows out of it.

    ``outputs`` are the nodes whose gradients the edges carry; ``gradient_edges`` is False
    where the gradients are drawn as nodes instead (the autodiff stage).
    """

    nodes: list[Node]
    outputs: list[Node]
    terminals: list[Terminal]
    gradient_edges: bool = True


def figure(outputs: Sequence[Node], stage: str = "source") -> Figure:
    """The graph of ``outputs`` at one stage of compilation."""
    outputs = list(outputs)
    if stage == "source":
        return _plain(outputs)
    if stage == "optimized":
        optimized = run_pipeline(Graph(tuple(outputs)), LEVELS[2])[-1].graph
        return _plain(list(optimized.outputs))
    if stage == "autodiff":
        return _autodiff(outputs)
    raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


def _plain(outputs: list[Node]) -> Figure:
    return Figure(topological_order(outputs), outputs, [Terminal(o) for o in outputs])


def _autodiff(outputs: list[Node]) -> Figure:
    """The forward graph and the gradient of its objective with respect to every
    floating-point input and parameter, as one graph."""
    y = objective(outputs)
    wrt = [n for n in topological_order(outputs)
           if n.op.name in ("input", "param") and n.dtype.kind == "f"]
    grads = grad(y, wrt) if y is not None and wrt else []
    terminals = [Terminal(o) for o in outputs] + [Terminal(g, x) for g, x in zip(grads, wrt)]
    return Figure(topological_order(outputs + grads), outputs, terminals, gradient_edges=False)
