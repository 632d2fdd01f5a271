"""The ordered pass pipeline. Each pass is a named function Graph -> Graph; ``optimize``
levels pick a prefix of the pipeline, and ``passes=[...]`` picks any list by name. One name
marks where something other than a rewrite happens, so that a list says all that a level
does: ``fold_lr`` (the step is built with the learning rate in backpropagation's seed); its
function returns the graph unchanged. Memory planning is no pass: the backend plans buffers
over the final schedule (``graphc.backend.memory``), from ``MEMORY_LEVEL`` on unless
``gc.compile(memory=...)`` says otherwise."""

from __future__ import annotations

import warnings
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
}

LEVELS: dict[int, tuple[str, ...]] = {
    0: (),
    1: ("stabilize", "cse"),
    2: ("stabilize", "fold_lr", "cse", "fuse", "simplify", "flatten"),
    3: ("stabilize", "fold_lr", "cse", "fuse", "simplify", "gemm", "flatten"),
}

#: The lowest level at which the backend plans buffers when not told (``memory=None``).
MEMORY_LEVEL = 2


@dataclass(frozen=True)
class Stage:
    """The graph after one pass (the first stage, "source", is the graph as built)."""

    name: str
    graph: Graph


def pass_names(optimize: int, passes: Sequence[str] | None,
               memory: bool | None = None) -> tuple[tuple[str, ...], bool]:
    """The passes to run and whether the backend plans buffers: those of level ``optimize``,
    planned from ``MEMORY_LEVEL`` on, or the ``passes`` named, unplanned; ``memory`` (where
    not None) decides planning either way. "memory" in ``passes``, once a pass name, is taken
    out and means ``memory=True``, with a DeprecationWarning, so older lists still compile."""
    if passes is not None:
        names, memory = _memory_named(passes, memory)
        unknown = [p for p in names if p not in PASSES]
        if unknown:
            raise ValueError(f"unknown passes {unknown}; known passes: {list(PASSES)}")
        return names, bool(memory)
    if optimize not in LEVELS:
        raise ValueError(f"optimize must be one of {sorted(LEVELS)}, got {optimize!r}")
    return LEVELS[optimize], optimize >= MEMORY_LEVEL if memory is None else memory


def _memory_named(passes: Sequence[str],
                  memory: bool | None) -> tuple[tuple[str, ...], bool | None]:
    """``passes`` without "memory", and ``memory``: True where the list named it (the old
    spelling, which warns, pointing at the call of ``gc.compile``)."""
    names = tuple(p for p in passes if p != "memory")
    if len(names) == len(passes):
        return names, memory
    if memory is False:
        raise ValueError('passes names "memory" but memory=False; drop one of them')
    warnings.warn('"memory" is no longer a pass: planning buffers is a backend step; pass '
                  'memory=True to gc.compile instead', DeprecationWarning, stacklevel=4)
    return names, True


def run_pipeline(graph: Graph, names: Sequence[str]) -> list[Stage]:
    """Every stage of the pipeline, from the graph as built to the last pass's result."""
    stages = [Stage("source", graph)]
    for name in names:
        stages.append(Stage(name, PASSES[name](stages[-1].graph)))
    return stages
