"""The elementwise functions graphc knows beyond SymPy's own, each in one record: its SymPy
class (with its derivative), its reference NumPy for the interpreter, the NumPy code the
printer writes, its in-place ufunc lowering, whether simplify may work on it, and the
``gc.<name>`` function users declare it with.

The printer (graphc.ops.expr_printer), the in-place lowering (graphc.ops.inplace), the
simplify pass and the public API build their cases from ``RECORDS``: adding an activation
is one record here and its test. A derivative is written in terms of the function itself
where the math allows it (sigmoid' = sigmoid * (1 - sigmoid)), so that autodiff can reuse
the forward output. Each function evaluates itself at numbers (so ``gc.elu(2.0)`` is the
constant 2.0) and is real for real arguments (so SymPy never writes ``re(...)`` around it).

A record's ``printed(p, *args)`` writes the call with the printer ``p``'s helpers:
``p.text(e)`` (an argument as code), ``p.operand(e, "Mul")`` (in parentheses where an
operator of that precedence would bind it otherwise), ``p.number(e)`` (a number in the node's
dtype) and ``p.mask(e)`` (``(e > 0)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp


class RealFunction(sp.Function):
    """A function that is real where its arguments are."""

    def _eval_is_real(self):
        return all(a.is_real for a in self.args) or None


def _at_number(x: sp.Basic) -> bool:
    return bool(x.is_number and x.is_comparable)


class step(RealFunction):  # noqa: N801 (SymPy functions are named as they print)
    """The unit step with step(0) = 0: the derivative of relu, as a mask."""

    @classmethod
    def eval(cls, x):
        if _at_number(x):
            return sp.Integer(1 if x > 0 else 0)

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class relu(RealFunction):  # noqa: N801
    """max(x, 0). Its derivative is written as a mask of its own output: relu(x) > 0."""

    @classmethod
    def eval(cls, x):
        if _at_number(x):
            return sp.Max(x, 0)

    def fdiff(self, argindex=1):
        return step(relu(self.args[0]))


class sigmoid(RealFunction):  # noqa: N801
    """1 / (1 + exp(-x)), computed from exp(-|x|) so that it neither overflows nor loses its
    digits far from 0 (0.5 * (1 + tanh(x/2)) is 1.7e-4 off, relatively, at x = -30)."""

    @classmethod
    def eval(cls, x):
        if _at_number(x):
            return 1 / (1 + sp.exp(-x))

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)


class softplus(RealFunction):  # noqa: N801
    """log(1 + exp(x)), computed as logaddexp(0, x) so that it never overflows."""

    @classmethod
    def eval(cls, x):
        if _at_number(x):
            return sp.log(1 + sp.exp(x))

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])


class leaky_slope(RealFunction):  # noqa: N801
    """The derivative of leaky_relu, written with its output y: 1 where y > 0, else alpha."""

    @classmethod
    def eval(cls, y, alpha):
        if _at_number(y):
            return sp.Integer(1) if y > 0 else alpha

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class leaky_relu(RealFunction):  # noqa: N801
    """x where x > 0, else alpha * x (0 <= alpha < 1)."""

    @classmethod
    def eval(cls, x, alpha):
        if _at_number(x):
            return x if x > 0 else alpha * x

    def fdiff(self, argindex=1):
        x, alpha = self.args
        return leaky_slope(leaky_relu(x, alpha), alpha)


class elu_slope(RealFunction):  # noqa: N801
    """The derivative of elu written with its output y: 1 where y > 0, else y + alpha.

    Its own derivative (for elu''): 0 where y > 0, else 1, the step of -y.
    """

    @classmethod
    def eval(cls, y, alpha):
        if _at_number(y):
            return sp.Integer(1) if y > 0 else y + alpha

    def fdiff(self, argindex=1):
        return step(-self.args[0]) if argindex == 1 else sp.Integer(0)


class elu(RealFunction):  # noqa: N801
    """x where x > 0, else alpha * (exp(x) - 1)."""

    @classmethod
    def eval(cls, x, alpha):
        if _at_number(x):
            return x if x > 0 else alpha * (sp.exp(x) - 1)

    def fdiff(self, argindex=1):
        x, alpha = self.args
        return elu_slope(elu(x, alpha), alpha)


Printed = Callable[..., str]


@dataclass(frozen=True)
class Record:
    """Everything graphc knows of one elementwise function.

    ``function``: the SymPy class (graphc's own, or SymPy's where NumPy lacks it), or None for
    a function that is an expression of others (``expression`` builds it: mish is
    x*tanh(softplus(x))). ``reference``: NumPy for the interpreter, written independently of
    ``printed``, so the two check each other. ``helper``: the source of a function the
    generated module defines for itself where NumPy has none, and ``imports`` the lines it
    needs at the module's top. ``inplace``: the ufunc that
    computes it into an output array against an array of zeros (relu is
    ``np.maximum(x, zeros, out=...)``), for the in-place lowering. ``cheap``: SymPy's
    simplify handles expressions holding it quickly. ``params``: the keyword parameters of
    its ``gc.<name>`` function with their defaults (None: not a user function).
    """

    name: str
    doc: str
    function: type[sp.Function] | None = None
    expression: Callable[..., sp.Basic] | None = None
    reference: Callable[..., Any] | None = None
    printed: Printed | None = None
    helper: str | None = None
    imports: tuple[str, ...] = ()
    inplace: str | None = None
    cheap: bool = False
    params: tuple[tuple[str, float], ...] | None = ()


def _float(x, value):
    """``value`` as an array in the float dtype of an operation on ``x``."""
    return np.asarray(value, dtype=np.result_type(x, np.float32))


def _np_sigmoid(x):
    return np.exp(-np.logaddexp(np.zeros_like(x), -x))


def _np_elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _np_erf(x):
    x = np.asarray(x)
    return _float(x, np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64))


def _leaky_relu_code(p, x, alpha) -> str:
    return f"np.where({p.text(x)} > 0, {p.text(x)}, {p.text(alpha)}*{p.operand(x, 'Mul')})"


def _leaky_slope_code(p, y, alpha) -> str:
    return f"np.where({p.text(y)} > 0, {p.number(sp.S.One)}, {p.number(alpha)})"


def _elu_slope_code(p, y, alpha) -> str:
    return f"np.where({p.text(y)} > 0, {p.number(sp.S.One)}, {p.text(y)} + {p.text(alpha)})"


def _elu_code(p, x, alpha) -> str:
    negative = f"np.expm1(np.minimum({p.text(x)}, 0.0))"
    return f"np.where({p.text(x)} > 0, {p.text(x)}, {p.text(alpha)}*{negative})"


SIGMOID_SOURCE = (
    "def sigmoid(x):\n"
    '    """1 / (1 + exp(-x)), from exp(-|x|): it never overflows, nor loses digits."""\n'
    "    e = np.exp(-np.abs(x))\n"
    "    return np.where(x >= 0, 1.0, e) / (1.0 + e)\n"
)

ERF_SOURCE = (
    "def erf(x):\n"
    '    """The error function, elementwise (NumPy has none): math.erf of each entry."""\n'
    "    x = np.asarray(x)\n"
    "    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.result_type(x, np.float32))\n"
)

_SQRT_2_OVER_PI = sp.sqrt(2 / sp.pi)

#: Every elementwise function graphc knows beyond SymPy's own, by name.
RECORDS: dict[str, Record] = {r.name: r for r in [
    Record("step", "The unit step (relu's mask).", step,
           reference=lambda x: _float(x, x > 0), printed=lambda p, x: p.mask(x),
           inplace="np.greater", cheap=True, params=None),
    Record("relu", "max(x, 0): the rectified linear unit.", relu,
           reference=lambda x: np.where(x <= 0, np.zeros_like(x), x),
           printed=lambda p, x: f"np.maximum({p.text(x)}, 0.0)", inplace="np.maximum",
           cheap=True),
    Record("sigmoid", sigmoid.__doc__ or "", sigmoid, reference=_np_sigmoid,
           printed=lambda p, x: f"sigmoid({p.text(x)})", helper=SIGMOID_SOURCE, cheap=True),
    Record("softplus", softplus.__doc__ or "", softplus,
           reference=lambda x: np.logaddexp(np.zeros_like(x), x),
           printed=lambda p, x: f"np.logaddexp(0.0, {p.text(x)})", cheap=True),
    Record("leaky_slope", leaky_slope.__doc__ or "", leaky_slope,
           reference=lambda y, alpha: _float(y, np.where(y > 0, 1.0, alpha)),
           printed=_leaky_slope_code, params=None),
    Record("leaky_relu", "x where x > 0, else alpha * x.", leaky_relu,
           reference=lambda x, alpha: np.where(x > 0, x, alpha * x),
           printed=_leaky_relu_code, params=(("alpha", 0.01),)),
    Record("elu_slope", elu_slope.__doc__ or "", elu_slope,
           reference=lambda y, alpha: np.where(y > 0, _float(y, 1.0), y + alpha),
           printed=_elu_slope_code, params=None),
    Record("elu", "x where x > 0, else alpha * (exp(x) - 1).", elu, reference=_np_elu,
           printed=_elu_code, params=(("alpha", 1.0),)),
    Record("erf", "The error function (GELU's exact form).", sp.erf, reference=_np_erf,
           printed=lambda p, x: f"erf({p.text(x)})", helper=ERF_SOURCE,
           imports=("import math",), params=None),
    Record("gelu", "x * Phi(x), Phi the standard normal CDF: 0.5 x (1 + erf(x / sqrt 2)).",
           expression=lambda x: x * (1 + sp.erf(x / sp.sqrt(2))) / 2),
    Record("gelu_tanh", "GELU's tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).",
           expression=lambda x: x * (1 + sp.tanh(_SQRT_2_OVER_PI
                                                  * (x + sp.Float(0.044715) * x**3))) / 2),
    Record("mish", "x * tanh(softplus(x)).", expression=lambda x: x * sp.tanh(softplus(x))),
]}

#: graphc's own SymPy functions and SymPy's that graphc prints itself (erf), by class.
FUNCTIONS = tuple(r.function for r in RECORDS.values() if r.function is not None)

#: NumPy implementations for the reference interpreter (``sympy.lambdify``).
NUMPY_IMPLEMENTATIONS = {r.name: r.reference for r in RECORDS.values()
                         if r.reference is not None}
