"""Leaves of a graph: inputs fed at each call, parameters the program owns and trains,
constants, and optimizer state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.node import Node
from graphc.ir.shapes import Dim, format_shape, normalize_shape, sizes_of
from graphc.ir.source import caller_location
from graphc.ops.registry import OPS, Op, _role

_generator = [np.random.default_rng(0)]


def seed(value: int) -> None:
    """Reseed the generator that initializes parameters declared without a seed."""
    _generator[0] = np.random.default_rng(value)


class Leaf(Op):
    """A node with no inputs; its value comes from a feed (input) or from ``node.value``."""

    def infer(self, inputs, attrs):
        raise AssertionError("leaves are built by their own functions")

    def evaluate(self, node, args):
        return node.value


class Input(Leaf):
    name = "input"


class Param(Leaf):
    name = "param"


class State(Leaf):
    name = "state"


class Constant(Leaf):
    name = "constant"

    def label(self, node):
        return _format_number(node.value) if node.shape == () else "const"

    def emit(self, node, args, e):
        if node.shape == ():
            return f"np.{node.dtype.name}({_format_number(node.value)})"
        return f"np.array({node.value.tolist()!r}, dtype=np.{node.dtype.name})"


def _format_number(value: Any) -> str:
    """A number as a Python literal; NaN and infinities as NumPy's names for them."""
    v = value.item() if isinstance(value, np.ndarray) else value
    if isinstance(v, float) and not np.isfinite(v):
        return "np.nan" if np.isnan(v) else ("np.inf" if v > 0 else "-np.inf")
    return repr(float(v)) if isinstance(v, float) else repr(v)


def _leaf(op: str, name: str, shape: Sequence[Dim] | Dim, dtype: Any,
          value: np.ndarray | None = None, role: str | None = None) -> Node:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{op} needs a non-empty string name, got {name!r}")
    return Node(OPS[op], (), {}, normalize_shape(shape), numeric_dtype(f"{op} {name!r}", dtype),
                name=name, location=caller_location(), role=role or _role[-1], value=value)


def numeric_dtype(what: str, dtype: Any) -> np.dtype:
    """``dtype`` as a NumPy dtype of booleans, integers or floats (what programs compute
    with); a ShapeError starting with ``what`` (``input 'x'``) for any other (complex,
    strings, objects)."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise ShapeError(f"{what}: {dtype!r} is not a NumPy dtype") from None
    if resolved.kind not in "biuf":
        raise ShapeError(f"{what}: dtype {resolved} is not supported; use a float, integer "
                         "or bool dtype")
    return resolved


def input(name: str, shape: Sequence[Dim] | Dim = (), dtype: Any = "float64") -> Node:  # noqa: A001
    """An array fed at each call of a compiled program, e.g. ``gc.input("x", ("batch", 64))``."""
    return _leaf("input", name, shape, dtype)


def scalar(name: str, dtype: Any = "float64") -> Node:
    """An input of shape ()."""
    return _leaf("input", name, (), dtype)


def param(name: str, shape: Sequence[int] | int, init: Any = "he", dtype: Any = "float64",
          seed: int | None = None) -> Node:
    """A trainable parameter with its initial value.

    ``shape`` is numbers, each at least 1 (a parameter with no entries has nothing to train).
    ``init`` is "zeros", "he" (normal, std sqrt(2 / fan_in): for ReLU layers), "glorot"
    (uniform, limit sqrt(6 / (fan_in + fan_out))), a number, or an array of the shape.
    ``seed`` makes the draw independent of other parameters; without it the draw comes from
    graphc's generator (see ``gc.seed``), so a script gives the same numbers at every run.
    """
    dims = normalize_shape(shape)
    dtype = numeric_dtype(f"param {name!r}", dtype)
    sizes = sizes_of(dims)
    if sizes is None:
        raise ShapeError(f"param {name!r}: a parameter's shape must be numbers, "
                         f"got {format_shape(dims)}")
    if 0 in sizes:
        raise ShapeError(f"param {name!r}: shape {format_shape(sizes)} has no entries; a "
                         "parameter needs at least one along every axis")
    rng = np.random.default_rng(seed) if seed is not None else _generator[0]
    return _leaf("param", name, sizes, dtype, value=_initial_value(name, sizes, init, dtype, rng))


def _initial_value(name: str, shape: tuple[int, ...], init: Any, dtype: Any,
                   rng: np.random.Generator) -> np.ndarray:
    fan_in, fan_out = _fans(shape)
    if isinstance(init, np.ndarray) or isinstance(init, (list, tuple)):
        value = np.asarray(init)
        if value.shape != shape:
            raise ShapeError(f"param {name!r}: init array has shape {value.shape}, "
                             f"declared {format_shape(shape)}")
    elif isinstance(init, (int, float)) and not isinstance(init, bool):
        value = np.full(shape, init)
    elif init == "zeros":
        value = np.zeros(shape)
    elif init == "he":
        value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif init == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        value = rng.uniform(-limit, limit, shape)
    else:
        raise ValueError(f"param {name!r}: unknown init {init!r}; use 'zeros', 'he', 'glorot', "
                         "a number or an array")
    return np.array(value, dtype=dtype)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Fan-in and fan-out: (in, out) for a dense weight, (out, in, kh, kw) for a conv filter."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


def constant(value: Any, dtype: Any = None) -> Node:
    """A constant array or number (Python numbers in expressions become constants by themselves)."""
    array = np.array(value, dtype=dtype)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"a constant must be numeric, got {array.dtype}")
    return Node(OPS["constant"], (), {}, array.shape, array.dtype, location=caller_location(),
                role=_role[-1], value=array)


def state(name: str, like: Node, fill: float = 0.0, shape: tuple[int, ...] | None = None,
          dtype: Any = None) -> Node:
    """Optimizer state (a moment, a step count) that the program owns and updates in place;
    ``attrs["of"]`` is the node it is kept for (``like``): flat state is ordered as its
    parameters are (graphc.passes.flatten)."""
    sizes = sizes_of(like.shape if shape is None else shape)
    if sizes is None:
        raise ShapeError(f"state {name!r}: optimizer state's shape must be numbers, got "
                         f"{format_shape(like.shape)}")
    dtype = like.dtype if dtype is None else np.dtype(dtype)
    node = _leaf("state", name, sizes, dtype, value=np.full(sizes, fill, dtype=dtype),
                 role="update")
    node.attrs["of"] = like
    return node
