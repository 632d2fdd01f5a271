"""Printing an elementwise SymPy expression as vectorized NumPy code.

A SymPy printer with one ``_print_<Function>`` method per function, in the style of SymPy's
own printers. Numbers print as Python literals, which NumPy treats as weakly typed, so a
float32 expression stays float32.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from graphc.backend import blas


class NumPyExprPrinter(StrPrinter):
    """``g * (1 - t**2)``, ``np.exp(x)``, ``np.where(x > 0, 1.0, 0.1)``."""

    def _call(self, fn: str, *args: sp.Basic) -> str:
        return f"{fn}({', '.join(self._print(a) for a in args)})"

    def _print_Float(self, expr: sp.Float) -> str:
        # 15 significant digits: 1 - 0.9 prints as 0.1, not 0.09999999999999998
        return repr(float(f"{float(expr):.15g}"))

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

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.args
        if exp == sp.S.Half:
            return self._call("np.sqrt", base)
        if exp == -sp.S.Half:
            return f"1/{self._call('np.sqrt', base)}"
        if exp == -1:
            return f"1/{self.parenthesize(base, PRECEDENCE['Pow'])}"
        return (f"{self.parenthesize(base, PRECEDENCE['Pow'], strict=True)}"
                f"**{self.parenthesize(exp, PRECEDENCE['Pow'], strict=True)}")

    def _print_Max(self, expr) -> str:
        return self._fold("np.maximum", expr.args)

    def _print_Min(self, expr) -> str:
        return self._fold("np.minimum", expr.args)

    def _fold(self, fn: str, args: tuple[sp.Basic, ...]) -> str:
        text = self._print(args[0])
        for a in args[1:]:
            text = f"{fn}({text}, {self._print(a)})"
        return text

    def _print_Heaviside(self, expr) -> str:
        return f"np.heaviside({self._print(expr.args[0])}, 0.5)"

    def _print_Relational(self, expr) -> str:
        return f"{self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)}"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *pieces, (last_value, last_cond) = expr.args
        if last_cond != sp.true:
            raise ValueError(f"a Piecewise needs a final 'otherwise' piece: {expr}")
        text = self._print(last_value)
        for value, cond in reversed(pieces):
            text = f"np.where({self._print(cond)}, {self._print(value)}, {text})"
        return text

    def _print_Function(self, expr) -> str:
        name = expr.func.__name__
        if name in UFUNCS:
            return self._call(UFUNCS[name], *expr.args)
        raise ValueError(f"graphc cannot write the SymPy function {name} as NumPy code; "
                         f"functions it can write: {sorted(PRINTABLE)}")

    # --- graphc's own activations (graphc.ops.functions) ---
    def _print_step(self, expr) -> str:
        return f"({self._print(expr.args[0])} > 0)"

    def _print_relu(self, expr) -> str:
        return f"np.maximum({self._print(expr.args[0])}, 0.0)"

    def _print_sigmoid(self, expr) -> str:
        return self._call("sigmoid", *expr.args)

    def _print_softplus(self, expr) -> str:
        return f"np.logaddexp(0.0, {self._print(expr.args[0])})"

    def _print_leaky_relu(self, expr) -> str:
        x, alpha = (self._print(a) for a in expr.args)
        return f"np.where({x} > 0, {x}, {alpha} * {x})"

    def _print_leaky_slope(self, expr) -> str:
        y, alpha = (self._print(a) for a in expr.args)
        return f"np.where({y} > 0, 1.0, {alpha})"

    def _print_elu(self, expr) -> str:
        x, alpha = (self._print(a) for a in expr.args)
        return f"np.where({x} > 0, {x}, {alpha} * np.expm1(np.minimum({x}, 0.0)))"

    def _print_elu_slope(self, expr) -> str:
        y, alpha = (self._print(a) for a in expr.args)
        return f"np.where({y} > 0, 1.0, {y} + {alpha})"


#: SymPy functions that are NumPy ufuncs (other functions print by their own methods).
UFUNCS = {
    "exp": "np.exp", "log": "np.log", "tanh": "np.tanh", "Abs": "np.abs", "sign": "np.sign",
    "sin": "np.sin", "cos": "np.cos", "tan": "np.tan", "asin": "np.arcsin",
    "acos": "np.arccos", "atan": "np.arctan", "atan2": "np.arctan2", "sinh": "np.sinh",
    "cosh": "np.cosh", "asinh": "np.arcsinh", "acosh": "np.arccosh", "atanh": "np.arctanh",
    "floor": "np.floor", "ceiling": "np.ceil",
}

#: Every SymPy function the printer writes, for the error message of one it cannot.
PRINTABLE = set(UFUNCS) | {"exp", "log", "tanh", "Abs", "sign", "Max", "Min", "Heaviside",
                           "Piecewise", "step", "relu", "sigmoid", "softplus", "leaky_relu",
                           "leaky_slope", "elu", "elu_slope"}

#: Functions the generated module defines for itself, where NumPy has no ufunc or call.
HELPERS = {
    "gemm": blas.SOURCE,
    "sigmoid": (
        "def sigmoid(x):\n"
        '    """1 / (1 + exp(-x)), written with tanh so that it never overflows."""\n'
        "    return 0.5 * (1.0 + np.tanh(0.5 * x))\n"
    ),
}

_printer = NumPyExprPrinter({"order": "none"})


def numpy_code(expr: sp.Basic) -> str:
    """The NumPy expression for ``expr``; its free symbols print as their names."""
    return _printer.doprint(expr)


def helpers_used(expr: sp.Basic) -> set[str]:
    """The names of HELPERS that the printed ``expr`` calls."""
    return {f.func.__name__ for f in expr.atoms(sp.Function)} & HELPERS.keys()
