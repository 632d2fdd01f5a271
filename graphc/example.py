"""``gc.Example``: what an example file declares for the ``graphc`` command."""

from __future__ import annotations

import difflib
import importlib.util
import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphc.data.dataset import Dataset
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
    dataset: Callable[[], Dataset] | None = None
    scores: Node | None = None
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        self.outputs = list(self.outputs)
        if not self.outputs or not all(isinstance(o, Node) for o in self.outputs):
            raise GraphcError("Example: outputs must be a non-empty list of graph nodes")
        resolved = resolve_feeds(self.feeds, topological_order(self.outputs), "Example")
        self.feeds = dict(resolved.items())  # keyed by node (a dict[Node | str, Any] to mypy)

    @property
    def input_nodes(self) -> list[Node]:
        """The inputs to compile with: the declared ones, or the inputs the feeds give."""
        if self.inputs is not None:
            return list(self.inputs)
        # __post_init__ resolved the keys to nodes
        return [n for n in self.feeds if isinstance(n, Node) and n.op.name == "input"]

    @property
    def trainable(self) -> bool:
        return self.optimizer is not None and self.dataset is not None

    def load_dataset(self) -> Dataset:
        """The dataset its ``dataset`` loader returns; GraphcError if it declares none."""
        if self.dataset is None:
            raise GraphcError("Example: the example declares no dataset")
        return self.dataset()


#: Where the examples that ship with graphc are: a package of its own beside ``graphc``, so
#: that the nodes they declare count as user code (named after their variables, errors
#: quoting their lines), which code inside the ``graphc`` package does not.
SHIPPED_PACKAGE = "graphc_examples"

#: Hints for a missing module an example needs, by the module's top-level name.
EXTRAS = {"sklearn": "data", "matplotlib": "plot"}


class ExampleError(GraphcError):
    """An example file could not be run: a syntax error, or an exception raised by one of
    its lines; the message names the file and the line and quotes it."""


def shipped_examples() -> dict[str, str]:
    """The examples that ship with graphc, by name (``mlp_digits``), with their paths."""
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = list(spec.submodule_search_locations)[0]
    return {name[:-3]: os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if name.endswith(".py") and not name.startswith("_")}


def find_example(name_or_path: str | os.PathLike) -> str:
    """The file an example argument names: a file that exists, else the shipped example of
    that name (``mlp_digits`` or ``mlp_digits.py``). GraphcError lists the shipped ones."""
    path = os.fspath(name_or_path)
    if os.path.isfile(path):
        return path
    shipped = shipped_examples()
    stem = path[:-3] if path.endswith(".py") else path
    if os.sep not in path and "/" not in path and stem in shipped:
        return shipped[stem]
    known = ", ".join(shipped) or "none installed"
    raise GraphcError(f"no example file at {path!r}, and no shipped example of that name "
                      f"(shipped: {known}; `graphc examples` describes them)")


def load_example(path: str | os.PathLike) -> Example:
    """Run an example file and return its ``example``: ``path`` is a file the user names,
    or the name of an example that ships with graphc (see ``find_example``).

    An exception raised by the file is an ExampleError naming the file and the line that
    raised it (``bad.py:12: AttributeError: module 'graphc' has no attribute 'rleu' (did
    you mean 'relu'?)``), chained to the original for ``--debug``."""
    path = find_example(path)
    spec = importlib.util.spec_from_file_location("graphc_example", path)
    if spec is None or spec.loader is None:
        raise GraphcError(f"{path}: not a Python file; an example file ends in .py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        line = f"\n    {err.text.strip()}" if err.text and err.text.strip() else ""
        raise ExampleError(f"{path}:{err.lineno}: SyntaxError: {err.msg}{line}") from err
    except Exception as err:
        raise ExampleError(describe_exception(err, path)) from err
    example = getattr(module, "example", None)
    if not isinstance(example, Example):
        raise GraphcError(f"{path}: an example file must define `example = gc.Example(...)`")
    return example


def describe_exception(err: BaseException, path: str) -> str:
    """One message for an exception raised while running the file ``path``: where (the
    innermost line of that file in the traceback, quoted), what, and a hint where one
    helps (a close name for a misspelt attribute, the extra to install for a missing
    module). A graphc error that already names the file keeps its own message."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if os.path.abspath(f.filename) == os.path.abspath(path)]
    if isinstance(err, GraphcError) and os.path.basename(path) in str(err):
        return str(err)
    where = f"{path}:{frames[-1].lineno}: " if frames else f"{path}: "
    quoted = f"\n    {frames[-1].line}" if frames and frames[-1].line else ""
    what = str(err) if isinstance(err, GraphcError) else f"{type(err).__name__}: {err}"
    return where + what + _hint(err) + quoted


def _hint(err: BaseException) -> str:
    if isinstance(err, ModuleNotFoundError) and err.name:
        extra = EXTRAS.get(err.name.partition(".")[0])
        return f" (install it with: pip install 'graphc[{extra}]')" if extra else ""
    if isinstance(err, AttributeError) and err.name and getattr(err, "obj", None) is not None:
        close = difflib.get_close_matches(err.name, dir(err.obj), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""
    return ""
