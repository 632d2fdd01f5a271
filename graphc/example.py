"""``gc.Example``: what an example file declares for the ``graphc`` command."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphc.errors import GraphcError
from graphc.feeds import resolve_feeds
from graphc.ir.graph import topological_order
from graphc.ir.node import Node


@dataclass
class Example:
    """A graph with what the commands need to show or train it.

    ``outputs`` are what ``graphc emit`` compiles and ``graphc render`` draws, with
    ``feeds`` (values of the inputs, by node or name, as ``gc.render`` takes them) for the
    figure; they are resolved to nodes here, so a key that names nothing the outputs depend
    on fails when the example is declared. A trainable example also names
    its ``inputs`` (features, then labels), its ``optimizer``, a ``dataset`` loader, and the
    ``scores`` node whose argmax is the prediction; ``outputs[0]`` is then the loss.
    """

    outputs: Sequence[Node]
    feeds: Mapping[Node | str, Any] = field(default_factory=dict)
    inputs: Sequence[Node] | None = None
    optimizer: Any = None
    dataset: Callable[[], Any] | None = None
    scores: Node | None = None
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        self.outputs = list(self.outputs)
        if not self.outputs or not all(isinstance(o, Node) for o in self.outputs):
            raise GraphcError("Example: outputs must be a non-empty list of graph nodes")
        self.feeds = resolve_feeds(self.feeds, topological_order(self.outputs), "Example")

    @property
    def input_nodes(self) -> list[Node]:
        """The inputs to compile with: the declared ones, or the inputs the feeds give."""
        if self.inputs is not None:
            return list(self.inputs)
        return [n for n in self.feeds if n.op.name == "input"]

    @property
    def trainable(self) -> bool:
        return self.optimizer is not None and self.dataset is not None


def load_example(path: str | os.PathLike) -> Example:
    """Run an example file (the user's own Python file) and return its ``example``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise GraphcError(f"no example file at {path!r}")
    spec = importlib.util.spec_from_file_location("graphc_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    example = getattr(module, "example", None)
    if not isinstance(example, Example):
        raise GraphcError(f"{path}: an example file must define `example = gc.Example(...)`")
    return example
