"""SymPy functions for activations that SymPy lacks, each with its derivative and its
numerically stable NumPy form.

A derivative is written in terms of the function itself where the math allows it
(sigmoid' = sigmoid * (1 - sigmoid)), so that autodiff can reuse the forward output. Each
function evaluates itself at numbers (so ``gc.elu(2.0)`` is the constant 2.0) and is real
for real arguments (so SymPy never writes ``re(...)`` or ``im(...)`` around it).
"""

from __future__ import annotations

import numpy as np
import sympy as sp


class RealFunction(sp.Function):
    """A function that is real where its arguments are."""

    def _eval_is_real(self):
        return all(a.is_real for a in self.args) or None


class step(RealFunction):
    """The unit step with step(0) = 0: the derivative of relu, as a mask."""

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_comparable:
            return sp.Integer(1 if x > 0 else 0)

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class relu(RealFunction):
    """max(x, 0). Its derivative is written as a mask of its own output: relu(x) > 0."""

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_comparable:
            return sp.Max(x, 0)

    def fdiff(self, argindex=1):
        return step(relu(self.args[0]))


class sigmoid(RealFunction):
    """1 / (1 + exp(-x)), computed from exp(-|x|) so that it neither overflows nor loses its
    digits far from 0 (0.5 * (1 + tanh(x/2)) is 1.7e-4 off, relatively, at x = -30)."""

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_comparable:
            return 1 / (1 + sp.exp(-x))

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)


class softplus(RealFunction):
    """log(1 + exp(x)), computed as logaddexp(0, x) so that it never overflows."""

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_comparable:
            return sp.log(1 + sp.exp(x))

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])


class leaky_slope(RealFunction):
    """The derivative of leaky_relu, written with its output y: 1 where y > 0, else alpha."""

    @classmethod
    def eval(cls, y, alpha):
        if y.is_number and y.is_comparable:
            return sp.Integer(1) if y > 0 else alpha

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class leaky_relu(RealFunction):
    """x where x > 0, else alpha * x (0 <= alpha < 1)."""

    @classmethod
    def eval(cls, x, alpha):
        if x.is_number and x.is_comparable:
            return x if x > 0 else alpha * x

    def fdiff(self, argindex=1):
        x, alpha = self.args
        return leaky_slope(leaky_relu(x, alpha), alpha)


class elu_slope(RealFunction):
    """The derivative of elu written with its output y: 1 where y > 0, else y + alpha.

    Its own derivative (for elu''): 0 where y > 0, else 1, the step of -y.
    """

    @classmethod
    def eval(cls, y, alpha):
        if y.is_number and y.is_comparable:
            return sp.Integer(1) if y > 0 else y + alpha

    def fdiff(self, argindex=1):
        return step(-self.args[0]) if argindex == 1 else sp.Integer(0)


class elu(RealFunction):
    """x where x > 0, else alpha * (exp(x) - 1)."""

    @classmethod
    def eval(cls, x, alpha):
        if x.is_number and x.is_comparable:
            return x if x > 0 else alpha * (sp.exp(x) - 1)

    def fdiff(self, argindex=1):
        x, alpha = self.args
        return elu_slope(elu(x, alpha), alpha)


#: graphc's own SymPy functions (each has a printer method and a reference implementation).
FUNCTIONS = (step, relu, sigmoid, softplus, leaky_slope, leaky_relu, elu_slope, elu)


def _np_sigmoid(x):
    return np.exp(-np.logaddexp(np.zeros_like(x), -x))


def _np_elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _float(x, value):
    """``value`` as an array in the float dtype of an operation on ``x``."""
    return np.asarray(value, dtype=np.result_type(x, np.float32))


#: NumPy implementations for the reference interpreter (``sympy.lambdify``), written
#: independently of the code generator's printer, so the two check each other. NaN goes
#: through each as it goes through NumPy's functions: relu(nan) is nan, as np.maximum's.
NUMPY_IMPLEMENTATIONS = {
    "step": lambda x: _float(x, x > 0),
    "relu": lambda x: np.where(x <= 0, np.zeros_like(x), x),
    "sigmoid": _np_sigmoid,
    "softplus": lambda x: np.logaddexp(np.zeros_like(x), x),
    "leaky_slope": lambda y, alpha: _float(y, np.where(y > 0, 1.0, alpha)),
    "leaky_relu": lambda x, alpha: np.where(x > 0, x, alpha * x),
    "elu_slope": lambda y, alpha: np.where(y > 0, _float(y, 1.0), y + alpha),
    "elu": _np_elu,
}
