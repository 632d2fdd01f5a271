"""Lowering a fused elementwise expression to a short sequence of in-place ufunc calls.

``np.maximum(b1 + matmul1, 0.0)`` allocates two arrays per call; the same expression as
``np.add(matmul1, b1, out=h1); np.maximum(h1, zeros, out=h1)`` allocates none. The
lowering walks the SymPy tree: the first full-size operand of each operation is computed into
the operation's own storage (the ``OUT`` slot at the root), any other full-size operand into a
scratch slot (``T0``, ``T1``, ...) that the memory plan backs with a buffer. Operands smaller
than the output (a bias, a scalar) and functions without a ufunc stay plain NumPy expressions.

Lowerings are built over the node's argument symbols ``x0, x1, ...`` and slot names, so the
memory planner can ask, before any name exists, how many scratch slots a node needs and
whether its output may overwrite one of its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from graphc.ir.shapes import Shape, broadcast_shapes
from graphc.ops import functions
from graphc.ops.expr_printer import numpy_code

#: The slot the whole expression is computed into.
OUT = "OUT"
#: The slot of an array of zeros shaped like ``OUT``: ``np.maximum(x, zeros, out=x)`` is about
#: three times faster than against the Python scalar 0.0 in float32 (performance-notes.md).
ZEROS = "ZEROS"

#: One-argument SymPy functions and the ufunc computing each.
UNARY: dict[type, str] = {
    sp.exp: "np.exp",
    sp.log: "np.log",
    sp.tanh: "np.tanh",
    sp.Abs: "np.abs",
    sp.sign: "np.sign",
}

RELATIONS: dict[str, str] = {
    ">": "np.greater", ">=": "np.greater_equal", "<": "np.less", "<=": "np.less_equal",
    "==": "np.equal", "!=": "np.not_equal",
}

#: An operand of a step: ("sym", x0), ("slot", "T0"), ("expr", a plain SymPy expression), or
#: ("slot", ZEROS). The value is a str or a SymPy object (untyped: Any), told apart by the kind.
Operand = tuple[str, Any]


@dataclass(frozen=True)
class Step:
    """``np.<ufunc>(*args, out=<slot>)``."""

    fn: str
    args: tuple[Operand, ...]
    out: str

    def reads(self) -> set[sp.Symbol]:
        """The argument symbols this step reads."""
        found: set[sp.Symbol] = set()
        for kind, value in self.args:
            if kind == "sym":
                found.add(value)
            elif kind == "expr":
                found |= value.free_symbols
        return found


@dataclass(frozen=True)
class Lowering:
    """The steps computing an expression into ``OUT``, with the scratch slots they use."""

    steps: tuple[Step, ...]
    temps: tuple[str, ...]

    def plain_parts(self) -> list[sp.Basic]:
        """The operands the steps compute as plain NumPy expressions (a bias, a scale)."""
        return [value for s in self.steps for kind, value in s.args if kind == "expr"]

    @property
    def uses_zeros(self) -> bool:
        return any(a == ("slot", ZEROS) for s in self.steps for a in s.args)

    def may_overwrite(self, symbol: sp.Symbol) -> bool:
        """Whether ``OUT`` may share storage with ``symbol``'s array: no step after the first
        one that writes ``OUT`` reads the symbol (a ufunc reading and writing the same array
        elementwise in one call is safe)."""
        first = next(i for i, s in enumerate(self.steps) if s.out == OUT)
        return all(symbol not in s.reads() for s in self.steps[first + 1:])


def lower(expr: sp.Basic, shapes: Mapping[sp.Symbol, Shape], out_shape: Shape,
          root_in_place: bool = True, alias: sp.Symbol | None = None) -> Lowering | None:
    """Cached front of ``_lower``: the layers of a deep network repeat expressions."""
    return _lower_cached(expr, tuple(sorted(shapes.items(), key=lambda kv: kv[0].name)),
                         out_shape, root_in_place, alias)


@lru_cache(maxsize=4096)
def _lower_cached(expr, shapes, out_shape, root_in_place, alias):
    return _lower(expr, dict(shapes), out_shape, root_in_place, alias)


def _lower(expr: sp.Basic, shapes: Mapping[sp.Symbol, Shape], out_shape: Shape,
           root_in_place: bool = True, alias: sp.Symbol | None = None) -> Lowering | None:
    """The in-place lowering of ``expr`` (free symbols of the given shapes), or None where the
    root has no ufunc (then the node stays a plain statement).

    With ``root_in_place=False`` the root's compound operands go to scratch slots instead of
    ``OUT``, so that ``OUT`` is written only by the last step: what lets the output overwrite
    an input that the root reads (``d_h1 * (h1 > 0)`` into ``d_h1``'s buffer).
    ``alias`` is a symbol whose array is ``OUT`` itself (an update's target): a sum whose one
    term reads it computes that term into ``OUT`` first (``np.multiply(m, 0.9, out=m)``), so
    the other terms need one scratch array, not one each.
    """
    builder = _ufunc_of(expr)
    if builder is None:
        return None
    c = Context(shapes, out_shape, spine=root_in_place, alias=alias)
    builder(expr, OUT, c)
    return Lowering(tuple(c.steps), tuple(c.temps))


@dataclass
class Context:
    """What a builder needs while it lowers one operation: where operands go, and the steps
    and scratch slots made so far."""

    shapes: Mapping[sp.Symbol, Shape]
    out_shape: Shape
    steps: list[Step] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)
    #: False while the root of a lowering that must write ``OUT`` only in its last step
    #: takes its first operand: that operand goes to a scratch slot, not to ``OUT``. (Every
    #: builder takes its first operand, through ``into``, before any other.)
    spine: bool = True
    #: The symbol whose array is ``OUT`` (see ``_lower``), or None.
    alias: sp.Symbol | None = None

    def emit(self, step: Step) -> None:
        self.steps.append(step)

    def is_scalar(self, e: sp.Basic) -> bool:
        """A number, or an expression of 0-d arrays (the batch size, a learning rate)."""
        return all(self.shapes[s] == () for s in e.free_symbols)

    def full_size(self, e: sp.Basic) -> bool:
        """Whether ``e`` is computed with ufuncs into an array of the output's shape."""
        return (bool(e.free_symbols) and _ufunc_of(e) is not None
                and broadcast_shapes(*(self.shapes[s] for s in e.free_symbols))
                == self.out_shape)

    def operand(self, e: sp.Basic) -> Operand:
        """``e`` as an operand: a symbol, a plain expression, or a scratch slot computed now."""
        if isinstance(e, sp.Symbol):
            return ("sym", e)
        if not self.full_size(e):
            return ("expr", e)
        slot = f"T{len(self.temps)}"
        self.temps.append(slot)
        self.compute(e, slot)
        return ("slot", slot)

    def into(self, e: sp.Basic, slot: str) -> Operand:
        """``e`` as an operand whose storage may be ``slot`` (the spine of the tree)."""
        if not self.spine:
            self.spine = True  # only the root's own operands are kept off OUT
            return self.operand(e)
        if isinstance(e, sp.Symbol) or not self.full_size(e):
            return self.operand(e)
        self.compute(e, slot)
        return ("slot", slot)

    def compute(self, e: sp.Basic, slot: str) -> None:
        builder = _ufunc_of(e)
        assert builder is not None
        builder(e, slot, self)


Builder = Callable[[sp.Basic, str, Context], None]


def _fold(first: Operand, rest: list[tuple[str, Operand]], slot: str, c: Context) -> None:
    """``first (op) rest[0] (op) rest[1] ...`` accumulated in ``slot``; each rest entry names
    its ufunc, so that an Add can mix np.add and np.subtract."""
    acc = first
    for fn, b in rest:
        c.emit(Step(fn, (acc, b), slot))
        acc = ("slot", slot)


def _add(e: sp.Add, slot: str, c: Context) -> None:
    terms = sorted(e.args, key=_heavy_first)
    plus = [t for t in terms if not _negated(t)]
    minus = [-t for t in terms if _negated(t)]
    readers = [t for t in terms if c.alias is not None and c.alias in t.free_symbols]
    if slot == OUT and c.spine and len(readers) == 1 and readers[0] in plus:
        plus.remove(readers[0])  # the term reading OUT's own array is computed there first
        plus.insert(0, readers[0])
    if not plus:  # -a - b: negate the first
        c.emit(Step("np.negative", (c.into(minus[0], slot),), slot))
        rest = [("np.subtract", c.operand(t)) for t in minus[1:]]
        _fold(("slot", slot), rest, slot, c)
        return
    first = c.into(plus[0], slot)
    rest = [("np.add", c.operand(t)) for t in plus[1:]] + \
           [("np.subtract", c.operand(t)) for t in minus]
    _fold(first, rest, slot, c)


def _mul(e: sp.Mul, slot: str, c: Context) -> None:
    """Array factors multiply (or divide) into the accumulator one by one; the scalar ones
    (numbers, the batch size, a learning rate) fold into one factor applied last, so that
    ``0.01*(p - y)/B`` costs one pass for its scale, not two."""
    arrays = [f for f in e.args if not c.is_scalar(f)] or list(e.args)
    scale = sp.Mul(*(f for f in e.args if f not in arrays))
    num = sorted((f for f in arrays if not _reciprocal(f)), key=_heavy_first)
    den = [f.base ** -f.exp for f in arrays if _reciprocal(f)]
    if not num:  # 1/x: the scale (or 1) is the numerator
        num, scale = [scale], sp.Integer(1)
    first = c.into(num[0], slot)
    rest = [("np.multiply", c.operand(f)) for f in num[1:]]
    rest += [("np.divide", c.operand(f)) for f in den]
    if scale == -1:
        _fold(first, rest, slot, c)
        c.emit(Step("np.negative", (("slot", slot) if rest else first,), slot))
        return
    if scale != 1:
        rest.append(("np.multiply", ("expr", scale)))
    if not rest:  # a lone factor: copy it through a no-op ufunc
        rest.append(("np.multiply", ("expr", sp.Integer(1))))
    _fold(first, rest, slot, c)


def _pow(e: sp.Pow, slot: str, c: Context) -> None:
    base, exp = e.args
    if exp == 2:
        c.emit(Step("np.square", (c.into(base, slot),), slot))
    elif exp == sp.S.Half:
        c.emit(Step("np.sqrt", (c.into(base, slot),), slot))
    elif exp.is_number and exp < 0:
        c.emit(Step("np.divide", (("expr", sp.Integer(1)), c.into(base ** -exp, slot)), slot))
    else:
        c.emit(Step("np.power", (c.into(base, slot), c.operand(exp)), slot))


def _unary(e: sp.Function, slot: str, c: Context) -> None:
    c.emit(Step(UNARY[type(e)], (c.into(e.args[0], slot),), slot))


def _extremum(e: sp.Basic, slot: str, c: Context) -> None:
    fn = "np.maximum" if isinstance(e, sp.Max) else "np.minimum"
    args = sorted(e.args, key=_heavy_first)
    _fold(c.into(args[0], slot), [(fn, c.operand(a)) for a in args[1:]], slot, c)


def _against_zeros(ufunc: str) -> Builder:
    """A function of one argument computed as ``ufunc(x, zeros)`` (its record's ``inplace``:
    relu is np.maximum, its mask np.greater): against an array, faster than against 0.0."""
    def build(e: sp.Basic, slot: str, c: Context) -> None:
        c.emit(Step(ufunc, (c.into(e.args[0], slot), ("slot", ZEROS)), slot))
    return build


def _relation(e: sp.Basic, slot: str, c: Context) -> None:
    c.emit(Step(RELATIONS[e.rel_op], (c.into(e.lhs, slot), c.operand(e.rhs)), slot))


def _ufunc_of(e: sp.Basic) -> Builder | None:
    """How to compute ``e`` with ufuncs, or None (it stays a plain NumPy expression)."""
    if isinstance(e, sp.Add):
        return _add
    if isinstance(e, sp.Mul):
        return _mul
    if isinstance(e, sp.Pow):
        return _pow
    if isinstance(e, (sp.Max, sp.Min)):
        return _extremum
    if type(e) in UNARY:
        return _unary
    record = functions.RECORDS.get(type(e).__name__)
    if record is not None and record.inplace is not None:
        return _against_zeros(record.inplace)
    if isinstance(e, sp.core.relational.Relational) and e.rel_op in RELATIONS:
        return _relation
    return None


def _heavy_first(e: sp.Basic) -> tuple[int, str]:
    """Sort key putting compound operands first (they become the accumulator, so the others
    fold into it without a scratch array), then symbols, then numbers, each in text order."""
    return (2 if e.is_number else 1 if isinstance(e, sp.Symbol) else 0, str(e))


def _negated(e: sp.Basic) -> bool:
    return e.could_extract_minus_sign() and not e.is_number


def _reciprocal(f: sp.Basic) -> bool:
    return isinstance(f, sp.Pow) and f.exp.is_number and f.exp < 0


def render(lowering: Lowering, names: Mapping[sp.Symbol, str], slots: Mapping[str, str],
           dtype: np.dtype, floats: Collection[sp.Symbol] = ()) -> list[str]:
    """The calls of a lowering with symbols and slots named. ``dtype`` is the node's,
    ``floats`` the symbols of float arrays (for the plain parts: see ``numpy_code``)."""

    def text(op: Operand) -> str:
        kind, value = op
        if kind == "slot":
            return slots[value]
        if kind == "sym":
            return names[value]
        return numpy_code(value, names, dtype, floats)

    return [f"{step.fn}({', '.join(text(a) for a in step.args)}, out={slots[step.out]})"
            for step in lowering.steps]
