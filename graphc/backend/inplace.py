"""Lowering a fused elementwise expression to a short sequence of in-place ufunc calls.

``np.maximum(b1 + matmul1, 0.0)`` allocates two arrays per call; the same expression as
``np.add(b1, matmul1, out=buf0); h1 = np.maximum(buf0, 0.0, out=buf0)`` allocates none. The
lowering walks the SymPy tree: the first full-size operand of each operation is computed into
the operation's own storage (the ``OUT`` slot at the root), any other full-size operand into a
scratch slot (``T0``, ``T1``, ...) that the memory plan backs with a buffer. Operands smaller
than the output (a bias, a scalar) and functions without a ufunc stay plain NumPy expressions.

Lowerings are built over the node's argument symbols ``x0, x1, ...`` and slot names, so the
memory planner can ask, before any name exists, how many scratch slots a node needs and
whether its output may overwrite one of its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from graphc.backend.expr_printer import helpers_used, numpy_code
from graphc.ir.shapes import Shape, broadcast_shapes
from graphc.ops import functions

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
#: ("slot", ZEROS).
Operand = tuple[str, object]


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
          root_in_place: bool = True) -> Lowering | None:
    """Cached front of ``_lower``: the layers of a deep network repeat expressions."""
    return _lower_cached(expr, tuple(sorted(shapes.items(), key=lambda kv: kv[0].name)),
                         out_shape, root_in_place)


@lru_cache(maxsize=4096)
def _lower_cached(expr, shapes, out_shape, root_in_place):
    return _lower(expr, dict(shapes), out_shape, root_in_place)


def _lower(expr: sp.Basic, shapes: Mapping[sp.Symbol, Shape], out_shape: Shape,
           root_in_place: bool = True) -> Lowering | None:
    """The in-place lowering of ``expr`` (free symbols of the given shapes), or None where the
    root has no ufunc (then the node stays a plain statement).

    With ``root_in_place=False`` the root's compound operands go to scratch slots instead of
    ``OUT``, so that ``OUT`` is written only by the last step: what lets the output overwrite
    an input that the root reads (``d_h1 * (h1 > 0)`` into ``d_h1``'s buffer).
    """
    steps: list[Step] = []
    temps: list[str] = []

    def shape_of(e: sp.Basic) -> Shape | None:
        return broadcast_shapes(*(shapes[s] for s in e.free_symbols))

    def operand(e: sp.Basic) -> Operand:
        if isinstance(e, sp.Symbol):
            return ("sym", e)
        if not e.free_symbols or shape_of(e) != out_shape or _ufunc_of(e) is None:
            return ("expr", e)
        slot = f"T{len(temps)}"
        temps.append(slot)
        compute(e, slot)
        return ("slot", slot)

    def into(e: sp.Basic, slot: str) -> Operand:
        """``e`` as an operand whose storage may be ``slot`` (the spine of the tree)."""
        if isinstance(e, sp.Symbol) or not e.free_symbols or shape_of(e) != out_shape \
                or _ufunc_of(e) is None:
            return operand(e)
        compute(e, slot)
        return ("slot", slot)

    def compute(e: sp.Basic, slot: str) -> None:
        builder = _ufunc_of(e)
        assert builder is not None
        builder(e, slot, into, operand, steps.append)

    builder = _ufunc_of(expr)
    if builder is None:
        return None
    builder(expr, OUT, into if root_in_place else lambda e, _slot: operand(e), operand,
            steps.append)
    return Lowering(tuple(steps), tuple(temps))


Into = Callable[[sp.Basic, str], Operand]
OperandOf = Callable[[sp.Basic], Operand]
Emit = Callable[[Step], None]
Builder = Callable[[sp.Basic, str, Into, OperandOf, Emit], None]


def _fold(first: Operand, rest: list[tuple[str, Operand]], slot: str, emit: Emit) -> None:
    """``first (op) rest[0] (op) rest[1] ...`` accumulated in ``slot``; each rest entry names
    its ufunc, so that an Add can mix np.add and np.subtract."""
    acc = first
    for fn, b in rest:
        emit(Step(fn, (acc, b), slot))
        acc = ("slot", slot)


def _add(e: sp.Add, slot: str, into: Into, operand: OperandOf, emit: Emit) -> None:
    terms = sorted(e.args, key=_heavy_first)
    plus = [t for t in terms if not _negated(t)]
    minus = [-t for t in terms if _negated(t)]
    if not plus:  # -a - b: negate the first
        emit(Step("np.negative", (into(minus[0], slot),), slot))
        rest = [("np.subtract", operand(t)) for t in minus[1:]]
        _fold(("slot", slot), rest, slot, emit)
        return
    first = into(plus[0], slot)
    rest = [("np.add", operand(t)) for t in plus[1:]] + \
           [("np.subtract", operand(t)) for t in minus]
    _fold(first, rest, slot, emit)


def _mul(e: sp.Mul, slot: str, into: Into, operand: OperandOf, emit: Emit) -> None:
    coeff, factors = e.as_coeff_mul()
    num = sorted((f for f in factors if not _reciprocal(f)), key=_heavy_first)
    den = [f.base ** -f.exp for f in factors if _reciprocal(f)]
    if num:
        first = into(num[0], slot)
        rest = [("np.multiply", operand(f)) for f in num[1:]]
    else:
        first = ("expr", coeff)
        coeff = sp.Integer(1)
        rest = []
    rest += [("np.divide", operand(f)) for f in den]
    if coeff == -1:
        _fold(first, rest, slot, emit)
        emit(Step("np.negative", (("slot", slot) if rest else first,), slot))
        return
    if coeff != 1:
        rest.append(("np.multiply", ("expr", coeff)))
    if not rest:  # a lone factor: copy it through a no-op ufunc
        rest.append(("np.multiply", ("expr", sp.Integer(1))))
    _fold(first, rest, slot, emit)


def _pow(e: sp.Pow, slot: str, into: Into, operand: OperandOf, emit: Emit) -> None:
    base, exp = e.args
    if exp == 2:
        emit(Step("np.square", (into(base, slot),), slot))
    elif exp == sp.S.Half:
        emit(Step("np.sqrt", (into(base, slot),), slot))
    elif exp.is_number and exp < 0:
        emit(Step("np.divide", (("expr", sp.Integer(1)), into(base ** -exp, slot)), slot))
    else:
        emit(Step("np.power", (into(base, slot), operand(exp)), slot))


def _unary(e: sp.Function, slot: str, into: Into, operand: OperandOf, emit: Emit) -> None:
    emit(Step(UNARY[type(e)], (into(e.args[0], slot),), slot))


def _extremum(e: sp.Basic, slot: str, into: Into, operand: OperandOf, emit: Emit) -> None:
    fn = "np.maximum" if isinstance(e, sp.Max) else "np.minimum"
    args = sorted(e.args, key=_heavy_first)
    _fold(into(args[0], slot), [(fn, operand(a)) for a in args[1:]], slot, emit)


def _relu(e: sp.Function, slot: str, into: Into, operand: OperandOf, emit: Emit) -> None:
    emit(Step("np.maximum", (into(e.args[0], slot), ("slot", ZEROS)), slot))


def _step(e: sp.Function, slot: str, into: Into, operand: OperandOf, emit: Emit) -> None:
    emit(Step("np.greater", (into(e.args[0], slot), ("expr", sp.Float(0.0))), slot))


def _sigmoid(e: sp.Function, slot: str, into: Into, operand: OperandOf, emit: Emit) -> None:
    """0.5 * (1 + tanh(0.5 x)), as the module's sigmoid helper computes it."""
    emit(Step("np.multiply", (into(e.args[0], slot), ("expr", sp.Float(0.5))), slot))
    for fn, k in (("np.tanh", None), ("np.add", 1.0), ("np.multiply", 0.5)):
        args = (("slot", slot),) if k is None else (("slot", slot), ("expr", sp.Float(k)))
        emit(Step(fn, args, slot))


def _relation(e: sp.Basic, slot: str, into: Into, operand: OperandOf, emit: Emit) -> None:
    emit(Step(RELATIONS[e.rel_op], (into(e.lhs, slot), operand(e.rhs)), slot))


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
    if isinstance(e, functions.relu):
        return _relu
    if isinstance(e, functions.step):
        return _step
    if isinstance(e, functions.sigmoid):
        return _sigmoid
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
           target: str | None) -> tuple[list[str], set[str]]:
    """The statements of a lowering with symbols and slots named; the last one binds
    ``target`` (when given) to the result. Also returns the helpers the plain parts call."""
    helpers: set[str] = set()

    def text(op: Operand) -> str:
        kind, value = op
        if kind == "slot":
            return slots[value]
        if kind == "sym":
            return names[value]
        expr = value.xreplace({s: sp.Symbol(names[s], real=True) for s in value.free_symbols})
        helpers.update(helpers_used(expr))
        return numpy_code(expr)

    lines = []
    for i, step in enumerate(lowering.steps):
        call = f"{step.fn}({', '.join(text(a) for a in step.args)}, out={slots[step.out]})"
        last = i == len(lowering.steps) - 1
        lines.append(f"{target} = {call}" if last and target else call)
    return lines, helpers
