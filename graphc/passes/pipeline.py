"""The ordered pass pipeline. Each pass is a named function Graph -> Graph; ``optimize``
levels pick a prefix of the pipeline, and ``passes=[...]`` picks any list by name. Two names
mark where something other than a rewrite happens, so that a list says all that a level
does: ``fold_lr`` (the step is built with the learning rate in backpropagation's seed) and
``memory`` (the backend plans buffers); their functions return the graph unchanged."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from graphc.ir.graph import Graph
from graphc.passes.cse import cse
from graphc.passes.flatten import flatten
from graphc.passes.fuse import fuse_elementwise
from graphc.passes.gemm import gemm
from graphc.passes.simplify import simplify
from graphc.passes.stabilize import stabilize

Pass = Callable[[Graph], Graph]


def memory(graph: Graph) -> Graph:
    """Not a rewrite: the point of the pipeline from which the backend plans buffers
    (``graphc.backend.memory.plan_memory``); named in the list so that ``passes=[...]`` and
    ``Program.report`` can say where planning starts."""
    return graph


def fold_lr(graph: Graph) -> Graph:
    """Not a rewrite: named in a pass list, it has ``gc.compile`` seed backpropagation with
    an SGD learning rate when it builds the step (graphc.compiler.build_step), since that
    changes how the gradients are derived; its stage is the graph as built that way."""
    return graph


#: Every pass by name, in pipeline order.
PASSES: dict[str, Pass] = {
    "stabilize": stabilize,
    "fold_lr": fold_lr,
    "cse": cse,
    "fuse": fuse_elementwise,
    "simplify": simplify,
    "gemm": gemm,
    "flatten": flatten,
    "memory": memory,
}

LEVELS: dict[int, tuple[str, ...]] = {
    0: (),
    1: ("stabilize", "cse"),
    2: ("stabilize", "fold_lr", "cse", "fuse", "simplify", "flatten", "memory"),
    3: ("stabilize", "fold_lr", "cse", "fuse", "simplify", "gemm", "flatten", "memory"),
}


@dataclass(frozen=True)
class Stage:
    """The graph after one pass (the first stage, "source", is the graph as built)."""

    name: str
    graph: Graph


def pass_names(optimize: int, passes: Sequence[str] | None) -> tuple[str, ...]:
    if passes is not None:
        unknown = [p for p in passes if p not in PASSES]
        if unknown:
            raise ValueError(f"unknown passes {unknown}; known passes: {list(PASSES)}")
        return tuple(passes)
    if optimize not in LEVELS:
        raise ValueError(f"optimize must be one of {sorted(LEVELS)}, got {optimize!r}")
    return LEVELS[optimize]


def run_pipeline(graph: Graph, names: Sequence[str]) -> list[Stage]:
    """Every stage of the pipeline, from the graph as built to the last pass's result."""
    stages = [Stage("source", graph)]
    for name in names:
        stages.append(Stage(name, PASSES[name](stages[-1].graph)))
    return stages
