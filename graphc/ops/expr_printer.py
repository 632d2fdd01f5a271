"""Printing an elementwise SymPy expression as vectorized NumPy code.

A SymPy printer with one ``_print_<Function>`` method per function, in the style of SymPy's
own printers, and three rules that make what it writes compute what the expression means:

- **Precedence, always.** Every operand is parenthesized by SymPy's precedence table where
  Python would otherwise bind it differently (``np.where(x > 0, x, 0.1*(a + b))``,
  ``(s**1.5)**0.5``), including the forms this printer writes with lower precedence than the
  SymPy object they print (``x**-1`` as ``1/x``).
- **Names, not substitution.** Symbols print through a table of variable names; the
  expression is never rebuilt with the names in it, so two inputs that happen to be the same
  array (``exp1/exp1``) are not cancelled by SymPy into ``1``.
- **The node's dtype.** A mask (relu' is ``y > 0``) is a boolean; it stays one only as a
  factor of a product with a float array, where NumPy promotes it. Anywhere else (alone, in a
  sum, negated) it is converted to the node's dtype, so masks never leak into arithmetic as
  booleans (True + True is True). Branches made only of numbers print in the node's dtype.

Numbers print as Python literals, which NumPy treats as weakly typed, so a float32
expression stays float32; floats print exactly (``repr``), so the code computes with the
same constants as the graph.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import sympy as sp
from sympy.core.relational import Relational
from sympy.logic.boolalg import Boolean, BooleanAtom, BooleanFunction
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from graphc.ops import blas, functions
from graphc.ops.unevaluated import rebuild


class UnprintableError(ValueError):
    """An expression holds something that has no NumPy code (``I``, ``oo``, ``Integral``)."""


class _cast_step(sp.Function):  # noqa: N801 (printed by _print__cast_step)
    """A step mask outside a product with a float array: printed converted to the dtype."""


class NumPyExprPrinter(StrPrinter):
    """``g*(1 - t**2)``, ``np.exp(x)``, ``np.where(x > 0, 1.0, 0.1)``."""

    _default_settings = {**StrPrinter._default_settings, "names": {}, "dtype": "float64",
                         "floats": frozenset()}

    def _print(self, expr, **kwargs) -> str:
        folded = _folded_number(expr)
        return super()._print(expr if folded is None else folded, **kwargs)

    # --- leaves ---
    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self._settings["names"].get(expr, expr.name)

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"{expr.p}/{expr.q}"

    def _print_Integer(self, expr: sp.Integer) -> str:
        return str(expr.p)

    def _print_Half(self, expr) -> str:
        return "0.5"

    def _print_Exp1(self, expr) -> str:
        return "np.e"

    def _print_Pi(self, expr) -> str:
        return "np.pi"

    def _print_NaN(self, expr) -> str:
        return "np.nan"

    def _print_Infinity(self, expr) -> str:
        return "np.inf"

    def _print_NegativeInfinity(self, expr) -> str:
        return "-np.inf"

    def _number(self, expr: sp.Basic) -> str:
        """A number in the node's dtype where nothing else would give it one: the branches
        of ``np.where(c, 1.0, 0.1)`` are float64 whatever the arrays around them."""
        text = self._print(expr)
        dtype = self._settings["dtype"]
        return text if dtype == "float64" else f"np.{dtype}({text})"

    def _branch(self, expr: sp.Basic) -> str:
        return self._number(expr) if expr.is_number else self._print(expr)

    # --- operators ---
    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.args
        if exp == sp.S.Half:
            return self._call("np.sqrt", base)
        if exp == -sp.S.Half:
            return f"1/{self._call('np.sqrt', base)}"
        if exp == -1:
            return f"1/{self._operand(base, PRECEDENCE['Pow'], strict=False)}"
        # ** binds right to left: a power as the base needs parentheses, as the exponent not
        return (f"{self._operand(base, PRECEDENCE['Pow'], strict=False)}"
                f"**{self._operand(exp, PRECEDENCE['Pow'], strict=True)}")

    def _operand(self, expr: sp.Basic, level: int, strict: bool) -> str:
        """``expr`` as an operand of an operator of precedence ``level``, in parentheses where
        Python would read it otherwise; ``x**-1`` and ``x**-0.5`` print as divisions, of
        lower precedence than the power SymPy sees."""
        prec = _printed_precedence(expr)
        text = self._print(expr)
        return f"({text})" if prec < level or (not strict and prec <= level) else text

    def parenthesize(self, item, level, strict=False):
        """SymPy's parenthesize, with the precedence of what this printer writes."""
        return self._operand(item, level, strict)

    def _print_Relational(self, expr) -> str:
        level = PRECEDENCE["Relational"]
        return (f"{self._operand(expr.lhs, level, strict=False)} {expr.rel_op} "
                f"{self._operand(expr.rhs, level, strict=False)}")

    def _print_And(self, expr) -> str:
        return self._fold("np.logical_and", expr.args)

    def _print_Or(self, expr) -> str:
        return self._fold("np.logical_or", expr.args)

    def _print_Not(self, expr) -> str:
        return self._call("np.logical_not", *expr.args)

    def _print_ITE(self, expr) -> str:
        return self._call("np.where", *expr.args)

    def _print_BooleanTrue(self, expr) -> str:
        return "True"

    def _print_BooleanFalse(self, expr) -> str:
        return "False"

    # --- functions ---
    def _call(self, fn: str, *args: sp.Basic) -> str:
        return f"{fn}({', '.join(self._print(a) for a in args)})"

    def _fold(self, fn: str, args: tuple[sp.Basic, ...]) -> str:
        text = self._print(args[0])
        for a in args[1:]:
            text = f"{fn}({text}, {self._print(a)})"
        return text

    def _print_Max(self, expr) -> str:
        return self._fold("np.maximum", expr.args)

    def _print_Min(self, expr) -> str:
        return self._fold("np.minimum", expr.args)

    def _print_Heaviside(self, expr) -> str:
        return f"np.heaviside({self._print(expr.args[0])}, 0.5)"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *pieces, (last_value, last_cond) = expr.args
        if last_cond != sp.true:
            raise UnprintableError(f"a Piecewise needs a final 'otherwise' piece: {expr}")
        text = self._branch(last_value)
        for value, cond in reversed(pieces):
            text = f"np.where({self._print(cond)}, {self._branch(value)}, {text})"
        return text

    # --- graphc's own activations (graphc.ops.functions) ---
    def _mask(self, x: sp.Basic) -> str:
        return f"({self._operand(x, PRECEDENCE['Relational'], strict=False)} > 0)"

    def _print__cast_step(self, expr) -> str:
        return f"{self._mask(expr.args[0])}.astype(np.{self._settings['dtype']})"

    def _print_Function(self, expr) -> str:
        """SymPy's functions that are NumPy ufuncs by the UFUNCS table, graphc's own (and
        those NumPy lacks, such as erf) by their records in graphc.ops.functions."""
        name = expr.func.__name__
        if name in UFUNCS:
            return self._call(UFUNCS[name], *expr.args)
        record = functions.RECORDS.get(name)
        if record is not None and record.printed is not None:
            return record.printed(self, *expr.args)
        raise UnprintableError(f"graphc cannot write the SymPy function {name} as NumPy "
                               f"code; functions it can write: {sorted(PRINTABLE)}")

    # --- what a record's ``printed`` may ask (graphc.ops.functions) ---
    def text(self, expr: sp.Basic) -> str:
        """``expr`` as code."""
        return self._print(expr)

    def operand(self, expr: sp.Basic, operator: str) -> str:
        """``expr`` as an operand of ``operator`` ("Mul", "Add", "Pow"...), parenthesized
        where Python would bind it otherwise."""
        return self._operand(expr, PRECEDENCE[operator], strict=False)

    def number(self, expr: sp.Basic) -> str:
        """A number in the node's dtype."""
        return self._number(expr)

    def mask(self, expr: sp.Basic) -> str:
        """``(expr > 0)``."""
        return self._mask(expr)

def _printed_precedence(expr: sp.Basic) -> int:
    """The precedence of what the printer writes for ``expr``: SymPy's, except for the powers
    it writes as divisions and the numbers it folds."""
    folded = _folded_number(expr)
    if folded is not None:
        return precedence(folded)
    if isinstance(expr, sp.Pow) and expr.exp in (-1, -sp.S.Half):
        return PRECEDENCE["Mul"]
    return precedence(expr)


def _folded_number(expr: sp.Basic) -> sp.Float | None:
    """A number that would print as NumPy calls on numbers (``np.exp(-2)``, ``np.sqrt(2)``),
    as its value: NumPy's functions return float64 scalars, which would make a float32
    expression float64, where a Python float literal does not."""
    if not (isinstance(expr, sp.Expr) and expr.is_number) or expr.is_Atom:
        return None
    if not any(isinstance(e, sp.Function) or (isinstance(e, sp.Pow) and not e.exp.is_Integer)
               for e in sp.preorder_traversal(expr)):
        return None
    value = complex(expr.evalf())
    if value.imag or not np.isfinite(value.real):
        return None
    return sp.Float(value.real)


#: SymPy functions that are NumPy ufuncs (other functions print by their own methods).
UFUNCS = {
    "exp": "np.exp", "log": "np.log", "tanh": "np.tanh", "Abs": "np.abs", "sign": "np.sign",
    "sin": "np.sin", "cos": "np.cos", "tan": "np.tan", "asin": "np.arcsin",
    "acos": "np.arccos", "atan": "np.arctan", "atan2": "np.arctan2", "sinh": "np.sinh",
    "cosh": "np.cosh", "asinh": "np.arcsinh", "acosh": "np.arccosh", "atanh": "np.arctanh",
    "floor": "np.floor", "ceiling": "np.ceil",
}

#: graphc's own functions, each printed by a method of the printer.
OWN_FUNCTIONS = {name: r for name, r in functions.RECORDS.items() if r.printed is not None}

#: Every SymPy function the printer writes, for the error message of one it cannot.
PRINTABLE = set(UFUNCS) | {"Max", "Min", "Heaviside", "Piecewise"} | set(OWN_FUNCTIONS)

#: The SymPy classes an expression may be built of, besides those functions.
_STRUCTURE = (sp.Symbol, sp.Add, sp.Mul, sp.Pow, sp.Piecewise, sp.Max, sp.Min, sp.Heaviside,
              Relational, sp.And, sp.Or, sp.Not, sp.ITE, BooleanAtom,
              sp.functions.elementary.piecewise.ExprCondPair, sp.Tuple)

#: Functions the generated module defines for itself, where NumPy has no ufunc or call.
HELPERS = {"gemm": blas.SOURCE} | {name: r.helper for name, r in functions.RECORDS.items()
                                    if r.helper is not None}

#: The import lines each helper needs at the top of the generated module.
HELPER_IMPORTS = {name: r.imports for name, r in functions.RECORDS.items() if r.imports}


def check_printable(expr: sp.Basic) -> None:
    """Raise UnprintableError, naming the part, where ``expr`` holds anything the printer
    has no real NumPy code for: complex or infinite numbers, unevaluated calculus
    (Integral, Derivative), matrices, functions NumPy lacks."""
    if not isinstance(expr, (sp.Expr, Boolean)):
        raise UnprintableError(f"{type(expr).__name__} {expr} is not an elementwise "
                               "expression")
    for e in sp.preorder_traversal(expr):
        if e.is_Atom and e.is_number:
            if e.is_extended_real is False or e in (sp.zoo, sp.nan):
                raise UnprintableError(f"{e} (in {expr}) is not a real number")
            if not isinstance(e, sp.Number) and e not in (sp.pi, sp.E):
                raise UnprintableError(f"the constant {e} (in {expr}) has no NumPy code")
        elif isinstance(e, sp.Function) and not isinstance(e, (sp.Piecewise, sp.Max, sp.Min,
                                                                 sp.Heaviside)):
            if e.func.__name__ not in PRINTABLE:
                raise UnprintableError(f"graphc cannot write the SymPy function "
                                       f"{e.func.__name__} (in {expr}) as NumPy code; "
                                       f"functions it can write: {sorted(PRINTABLE)}")
        elif not isinstance(e, _STRUCTURE):
            raise UnprintableError(f"{type(e).__name__} {e} (in {expr}) has no NumPy code"
                                   + ("; call .doit() on it first" if hasattr(e, "doit")
                                      and isinstance(e, (sp.Integral, sp.Derivative, sp.Sum,
                                                         sp.Product, sp.Subs)) else ""))


def _cast_unsafe_steps(expr: sp.Basic, floats: Collection[sp.Symbol]) -> sp.Basic:
    """``expr`` with every step mask that is not a factor of a product with a float array
    replaced by one printed in the node's dtype (see the module docstring)."""
    if not any(isinstance(e, functions.step) for e in sp.preorder_traversal(expr)):
        return expr

    def floating(e: sp.Basic) -> bool:
        return (not e.is_number and bool(e.free_symbols & set(floats))
                and not isinstance(e, (functions.step, Relational, BooleanFunction)))

    def walk(e: sp.Basic, in_float_product: bool) -> sp.Basic:
        if isinstance(e, functions.step):
            args = [walk(a, False) for a in e.args]
            return rebuild(functions.step if in_float_product else _cast_step, args)
        if not e.args:
            return e
        masks_ok = isinstance(e, sp.Mul) and any(floating(f) for f in e.args)
        return rebuild(e.func, (walk(a, masks_ok) for a in e.args))

    return walk(expr, False)


def numpy_code(expr: sp.Basic, names: Mapping[sp.Symbol, str] | None = None,
               dtype: np.dtype | str = "float64",
               floats: Collection[sp.Symbol] = ()) -> str:
    """The NumPy expression for ``expr``.

    Symbols print as ``names[symbol]`` (their own names where not given). ``dtype`` is the
    dtype of the array the expression computes, ``floats`` the symbols that stand for float
    arrays: together they decide where a mask may stay a boolean.
    """
    check_printable(expr)
    dtype = np.dtype(dtype)
    name = "bool_" if dtype.kind == "b" else dtype.name  # (NumPy 1.26 has no np.bool)
    printer = NumPyExprPrinter({"order": "none", "names": dict(names or {}), "dtype": name})
    return printer.doprint(_cast_unsafe_steps(expr, floats))


def helpers_used(expr: sp.Basic) -> set[str]:
    """The names of HELPERS that the printed ``expr`` calls."""
    return {f.func.__name__ for f in expr.atoms(sp.Function)} & HELPERS.keys()
