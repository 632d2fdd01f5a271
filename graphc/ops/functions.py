"""SymPy functions for activations that SymPy lacks, each with its derivative and its
numerically stable NumPy form.

A derivative is written in terms of the function itself where the math allows it
(sigmoid' = sigmoid * (1 - sigmoid)), so that autodiff can reuse the forward output.
"""

from __future__ import annotations

import numpy as np
import sympy as sp


class step(sp.Function):
    """The unit step with step(0) = 0: the derivative of relu, as a mask."""

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sp.Integer(1 if x > 0 else 0)

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class relu(sp.Function):
    """max(x, 0). Its derivative is written as a mask of its own output: relu(x) > 0."""

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sp.Max(x, 0)

    def fdiff(self, argindex=1):
        return step(relu(self.args[0]))


class sigmoid(sp.Function):
    """1 / (1 + exp(-x)), computed as 0.5 * (1 + tanh(x / 2)) so that it never overflows."""

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return 1 / (1 + sp.exp(-x))

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)


class softplus(sp.Function):
    """log(1 + exp(x)), computed as logaddexp(0, x) so that it never overflows."""

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sp.log(1 + sp.exp(x))

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])


class leaky_slope(sp.Function):
    """The derivative of leaky_relu: 1 where x > 0, else alpha."""

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class leaky_relu(sp.Function):
    """x where x > 0, else alpha * x (0 <= alpha < 1)."""

    def fdiff(self, argindex=1):
        x, alpha = self.args
        return leaky_slope(leaky_relu(x, alpha), alpha)


class elu_slope(sp.Function):
    """The derivative of elu written with its output y: 1 where y > 0, else y + alpha."""

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class elu(sp.Function):
    """x where x > 0, else alpha * (exp(x) - 1)."""

    def fdiff(self, argindex=1):
        x, alpha = self.args
        return elu_slope(elu(x, alpha), alpha)


def _np_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _np_elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


#: NumPy implementations for the reference interpreter (``sympy.lambdify``), written
#: independently of the code generator's printer, so the two check each other.
NUMPY_IMPLEMENTATIONS = {
    "step": lambda x: (x > 0).astype(np.result_type(x, np.float32)),
    "relu": lambda x: np.where(x > 0, x, 0 * x),
    "sigmoid": _np_sigmoid,
    "softplus": lambda x: np.logaddexp(0 * x, x),
    "leaky_slope": lambda y, alpha: np.where(y > 0, 1 + 0 * y, alpha + 0 * y),
    "leaky_relu": lambda x, alpha: np.where(x > 0, x, alpha * x),
    "elu_slope": lambda y, alpha: np.where(y > 0, 1 + 0 * y, y + alpha),
    "elu": _np_elu,
}
