"""The words and numbers a figure shows: numbers as the lecture slides print them (two
decimals: 0.73, -0.20, 1.37), tensors as their values or a summary, ops as the symbols of a
lecture slide, and names for unnamed nodes.

Everything here returns plain text; ``graphc.render.dot`` escapes it for Graphviz.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

from graphc.ir.node import Node
from graphc.ir.shapes import format_shape
from graphc.ops.elementwise import OUT, arg
from graphc.ops.reduce import Reduce

#: Tensors with at most this many elements are written out; larger ones are summarized.
SMALL_TENSOR = 6

#: Op labels as a slide writes them.
SYMBOLS = {"*": "×", "-": "−", "**": "^", "sigmoid": "σ"}

LEAVES = ("input", "param", "constant", "state")


@dataclass(frozen=True)
class Numbers:
    """How a figure writes numbers.

    By default as the lecture slides do: whole numbers as they are (3, -12), others to
    ``decimals`` decimals, keeping the second one (0.73, -0.20, 1.37, 2.04), and magnitudes
    below 0.01 or from 100000 up in scientific notation with two significant digits (9.7e-4,
    1.5e7), so that a small gradient never reads 0.00. With ``digits``, every number is
    rounded to that many significant digits instead, without trailing zeros (0.2, 1.4).
    """

    decimals: int = 2
    digits: int | None = None

    def __call__(self, x: float) -> str:
        x = float(x)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == 0:
            return "0"
        if self.digits is not None:
            return _significant(x, self.digits)
        if not 1e-2 <= abs(x) < 1e5:
            return _scientific(x, 2)
        if x == round(x):
            return str(int(x))
        return f"{x:.{self.decimals}f}"


#: The lectures' format, the default of every figure.
SLIDES = Numbers()

#: A number format as the functions here take it: a ``Numbers``, a count of significant
#: digits (``digits=2``, as graphc's figures wrote numbers before), None for ``SLIDES``, or
#: any function of a number (the viewer's ``slide_number``).
NumberFormat = Numbers | int | None | Callable[[float], str]


def numbers(fmt: NumberFormat) -> Callable[[float], str]:
    """The function writing numbers that a format argument stands for."""
    if fmt is None:
        return SLIDES
    if isinstance(fmt, int):
        return Numbers(digits=fmt)
    return fmt


def format_number(x: float, digits: NumberFormat = None) -> str:
    """``x`` as a figure writes it (see ``Numbers``): 1.37 and -0.20 by default; with an
    int ``digits``, to that many significant digits: 1.4 and -0.2."""
    return numbers(digits)(x)


def _significant(x: float, digits: int) -> str:
    """``x`` to ``digits`` significant digits without trailing zeros: 3, -0.2, 0.39, 12000
    positionally between 0.001 and 100000, else 1.2e5."""
    if 1e-3 <= abs(x) < 1e5:
        return np.format_float_positional(x, precision=digits, unique=False, fractional=False,
                                          trim="-")
    return _scientific(x, digits)


def _scientific(x: float, digits: int) -> str:
    """Scientific notation without the exponent's plus sign and padding: 9.7e-4, 1.5e7."""
    text = np.format_float_scientific(x, precision=max(digits - 1, 0), unique=False, trim="-",
                                      exp_digits=1)
    return text.replace(".e", "e").replace("e+", "e")


def format_array(value: np.ndarray, digits: NumberFormat = None, multiline: bool = False) -> str:
    """A value as an edge shows it: a number, a small tensor's entries, or a summary.

    A tensor of more than ``SMALL_TENSOR`` elements reads ``4×128: mean 0.12, norm 3.40``,
    which says what a lecture needs (its size and scale) in one short line. With
    ``multiline``, a small matrix is written one row per line.
    """
    a = np.asarray(value)
    fmt: NumberFormat = _integer if a.dtype.kind in "biu" else digits  # labels, masks
    if a.ndim == 0:
        return format_number(a.item(), fmt)
    if a.size <= SMALL_TENSOR:
        rows = [_nested(row, fmt) for row in a.tolist()]
        if multiline and a.ndim == 2 and len(rows) > 1:
            return "[" + ",\n".join(rows) + "]"
        return _nested(a.tolist(), fmt)
    dims = "×".join(str(d) for d in a.shape)
    mean = float(np.mean(a))
    if abs(mean) <= 1e-12 * float(np.max(np.abs(a))):
        mean = 0.0  # rounding noise, as in a gradient that sums to zero over classes
    norm = float(np.linalg.norm(a.astype(np.float64).ravel()))
    return f"{dims}: mean {format_number(mean, digits)}, norm {format_number(norm, digits)}"


def _integer(x: float) -> str:
    return str(int(x))


def _nested(items: list | float, digits: NumberFormat) -> str:
    if isinstance(items, list):
        return "[" + ", ".join(_nested(x, digits) for x in items) + "]"
    return format_number(items, digits)


def format_sum(total: np.ndarray, parts: Sequence[np.ndarray], digits: NumberFormat = None
               ) -> str:
    """A gradient and the branches that add up to it: ``-4 = -2 + -2`` for a number, the
    total and the count of branches for a tensor (whose parts are written on the branches)."""
    text = format_array(total, digits)
    if np.size(total) == 1:
        return text + " = " + " + ".join(format_array(p, digits) for p in parts)
    return f"{text} (sum of {len(parts)} branches)"


def shape_text(node: Node) -> str:
    """The declared shape, with named dimensions: ``(batch, 128)``."""
    return format_shape(node.shape)


# --- names ---------------------------------------------------------------------------
def assigned_names(nodes: Iterable[Node]) -> dict[int, str]:
    """Names for unnamed nodes from the user's code: ``q = x + y`` names the ``+`` node ``q``.

    Several nodes are made on a line such as ``f = 1 / (1 + gc.exp(-dot))``; only the last
    one made (the whole right-hand side) is what the variable holds, so only it is named.
    """
    last: dict[tuple[str, int], tuple[Node, str]] = {}
    for node in nodes:
        loc = node.location
        if node.name or loc is None or (name := loc.assigned_name) is None:
            continue
        key = (loc.filename, loc.lineno)
        if key not in last or last[key][0].id < node.id:
            last[key] = (node, name)
    return {n.id: name for n, name in last.values()}


def node_name(node: Node, names: dict[int, str]) -> str | None:
    """The node's own name, or the variable the user assigned it to, if any."""
    return node.name or names.get(node.id)


def objective_name(outputs: Sequence[Node], names: dict[int, str]) -> str:
    """What a gradient is of, in ``∂f/∂x``: the output's name where it is the one scalar
    output, else L (the sum of the outputs)."""
    floats = [o for o in outputs if o.dtype.kind == "f"]
    if len(floats) == 1 and floats[0].shape == ():
        return node_name(floats[0], names) or "out"
    return "L"


def title(node: Node, names: dict[int, str], width: int = 24) -> str:
    """How a caption refers to a node: its name, else its expression over named nodes
    (``w0·x0 + w1·x1``) as deep as fits in ``width`` characters."""
    return pretty(title_expr(node, names, width))


def title_expr(node: Node, names: dict[int, str], width: int = 24) -> sp.Basic:
    """The expression ``title`` writes, as SymPy, to substitute into other expressions."""
    for depth in (3, 2):
        expr = _expression(node, names, depth)
        if len(pretty(expr)) <= width:
            return expr
    return _expression(node, names, 1)


def _expression(node: Node, names: dict[int, str], depth: int) -> sp.Basic:
    name = node_name(node, names)
    if name:
        return sp.Symbol(name)
    if node.op.name == "constant" and node.shape == ():
        return sp.sympify(node.array.item())
    if node.op.name != "elementwise" or depth == 0:
        return sp.Symbol(_display(node.label) if node.inputs else "…")
    inner = {arg(i): _expression(x, names, depth - 1) for i, x in enumerate(node.inputs)}
    return node.attrs["expr"].xreplace(inner)


def pretty(expr: sp.Basic) -> str:
    """A SymPy expression as a slide writes it: ``y·(1 - y)``, ``x^2``, ``σ(x)``."""
    return str(expr).replace("**", "^").replace("*", "·").replace("sigmoid(", "σ(")


def partial(of: str, wrt: str) -> str:
    """``∂f/∂x``, with parentheses around an expression: ``∂f/∂(w0·x0)``."""
    return f"∂{of}/∂{wrt}" if wrt.isidentifier() else f"∂{of}/∂({wrt})"


def _display(label: str) -> str:
    """An op label as a slide writes it; a backward node's ``*'`` becomes ``×'``."""
    if label.endswith("'"):
        return SYMBOLS.get(label[:-1], label[:-1]) + "'"
    return SYMBOLS.get(label, label)


# --- op labels -------------------------------------------------------------------------
def argument_names(node: Node, names: dict[int, str]) -> list[str]:
    """Names for an expression's arguments: each input's name, or x0, x1... (as the
    expression itself calls them) for an unnamed one; all x0, x1... where names clash."""
    found = [node_name(x, names) or f"x{i}" for i, x in enumerate(node.inputs)]
    if len(set(found)) == len(found):
        return found
    return [f"x{i}" for i in range(len(node.inputs))]


def expression_arguments(node: Node, names: dict[int, str]) -> list[str] | None:
    """The argument names ``op_label`` writes, where it writes an expression over several
    inputs (a fused node); None where the label is a plain op symbol."""
    if node.op.name != "elementwise" or len(node.inputs) < 2:
        return None
    expr = node.attrs["expr"]
    if sp.count_ops(expr) <= 1 and not _numbers(expr):
        return None
    return argument_names(node, names)


def op_label(node: Node, names: dict[int, str]) -> str:
    """The op as a lecture writes it: ``+``, ``×``, ``exp``, ``σ``, ``@``; ``+1``, ``×-1``
    and ``1/x`` where a number was folded into the op; and the expression itself for a
    fused or user-defined elementwise node (``1/(exp(-w0·x0 - w2) + 1)``)."""
    if node.op.name != "elementwise":
        return _reduce_label(node) if isinstance(node.op, Reduce) else _display(node.label)
    expr: sp.Basic = node.attrs["expr"]
    if len(node.inputs) == 1:
        return _unary_label(node, expr, arg(0), node_name(node.inputs[0], names) or "x")
    shown = expression_arguments(node, names)
    if shown is None:
        return _display(node.label)
    return pretty(expr.xreplace({arg(i): sp.Symbol(n) for i, n in enumerate(shown)}))


def _unary_label(node: Node, expr: sp.Basic, x: sp.Symbol, name: str) -> str:
    if isinstance(expr, sp.Function) and expr.args[0] == x:
        return _display(node.label)
    rest = expr - x
    if expr.is_Add and rest.is_Number:
        return f"+{format_number(float(rest), 4)}" if rest > 0 else format_number(float(rest), 4)
    if expr.is_Mul and (expr / x).is_Number:
        return f"×{format_number(float(expr / x), 4)}"
    return pretty(expr.xreplace({x: sp.Symbol(name)}))


def _numbers(expr: sp.Basic) -> set[sp.Basic]:
    """The numbers in an expression, other than the -1 that writes subtraction and division."""
    return {n for n in expr.atoms(sp.Number) if n != -1}


def _reduce_label(node: Node) -> str:
    axes = node.attrs["axes"]
    label = _display(node.label)
    if len(axes) == len(node.inputs[0].shape):
        return label
    return f"{label} (axis {', '.join(str(a) for a in axes)})"


def derivative_text(expr: sp.Basic, node: Node, names: dict[int, str]) -> str:
    """A local derivative of ``node``'s expression, written over its inputs and output."""
    symbols = {arg(i): title_expr(x, names, 12) for i, x in enumerate(node.inputs)}
    return pretty(expr.xreplace(symbols | {OUT: title_expr(node, names, 12)}))
