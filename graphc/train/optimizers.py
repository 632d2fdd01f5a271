"""Optimizers as update rules made of graph ops, compiled into the training step.

Each optimizer follows the update formula and the default hyperparameters of its
``torch.optim`` namesake, so that a graphc step and a ``torch.optim`` step from the same
parameters and gradients agree to rounding: ``SGD`` (momentum, dampening, Nesterov, L2 weight
decay), ``RMSProp`` (``torch.optim.RMSprop``: momentum, centered), ``Adam`` (eps added after
the bias correction) and ``AdamW`` (decoupled weight decay). ``Momentum`` is kept from earlier
releases as SGD with momentum. Each rule reads like its formula; the code generator turns it
into in-place updates (``W1 -= 0.01*d_W1``, ``m_W1[...] = 0.9*m_W1 + 0.1*d_W1``).

Optimizer state is named after its parameter: ``b_W`` (momentum buffer), ``s_W`` (RMSProp's
square average), ``gbar_W`` (centered RMSProp's gradient average), ``m_W`` and ``v_W`` (Adam's
moments), and one step count ``t`` for the rules that read it; checkpoints store them under
these names.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from graphc.errors import OptimizerError
from graphc.ir.node import Node
from graphc.ops import api as ops
from graphc.ops.leaves import state
from graphc.ops.registry import role
from graphc.ops.tensor import cast
from graphc.ops.updates import assign


class Optimizer:
    """Builds the update nodes of a training step from parameters and their gradients.

    A subclass writes its formula in ``rule`` (one parameter) and, when the formula reads the
    step count t, sets ``counts_steps`` and computes in ``step_scalars`` the scalars of step t
    that every parameter's rule shares (so they are computed once per step, not per parameter).
    """

    #: The hyperparameters ``repr`` shows and ``==`` compares, as the constructor names them.
    fields: ClassVar[tuple[str, ...]] = ()

    @property
    def counts_steps(self) -> bool:
        """Whether the rule reads the step count t (1 at the first step), a scalar state."""
        return False

    @property
    def seed_scale(self) -> float:
        """What backpropagation may be seeded with instead of 1 when the update is linear
        in the gradient (plain SGD: the learning rate), so the scaling costs no pass of its
        own. 1 for every rule that is not linear in the gradient or keeps state."""
        return 1.0

    def updates(self, params: Sequence[Node], grads: Sequence[Node],
                seed_scale: float = 1.0) -> list[Node]:
        """The update nodes, given gradients that are ``seed_scale`` times the true ones
        (``seed_scale`` is 1 or this optimizer's ``seed_scale``)."""
        if seed_scale not in (1.0, self.seed_scale):
            raise ValueError(f"{type(self).__name__}: gradients scaled by {seed_scale!r} cannot "
                             f"be used; only 1 or {self.seed_scale!r} can")
        for p in params:
            if not np.issubdtype(p.dtype, np.floating):
                raise OptimizerError(
                    f"{type(self).__name__}: parameter {p.name!r} is {p.dtype}; optimizers "
                    "update floating-point parameters only (declare it with dtype='float32' "
                    "or 'float64', or make it a gc.constant if it is not to be trained)")
        with role("update"):
            nodes: list[Node] = []
            scalars: tuple[Node, ...] = ()
            if self.counts_steps and params:
                # counted, and its scalars computed, in float64 (as torch.optim computes them
                # in Python): in float32, 1 - 0.999**t is 1e-5 off at t=1, and t stops at 2**24
                t0 = state("t", params[0], shape=(), dtype=np.float64)
                t = assign(t0, t0 + 1)
                nodes.append(t)
                scalars = self.step_scalars(t)
            for p, g in zip(params, grads):
                nodes += self.rule(p, g, seed_scale, tuple(cast(s, p.dtype) for s in scalars))
            return nodes

    def step_scalars(self, t: Node) -> tuple[Node, ...]:
        """The scalars of step ``t`` (the updated count) that ``rule`` reads."""
        return ()

    def rule(self, w: Node, g: Node, seed_scale: float,
             scalars: tuple[Node, ...]) -> list[Node]:
        """The update nodes of parameter ``w`` with gradient ``g`` (times ``seed_scale``):
        state updates first, the parameter's own last."""
        raise NotImplementedError

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.fields)
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in self.fields)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``::

        g <- g + weight_decay * w                          (if weight_decay)
        b <- g at step 1, else momentum * b + (1 - dampening) * g   (if momentum)
        g <- g + momentum * b if nesterov, else b          (if momentum)
        w <- w - lr * g

    Without momentum and weight decay the update is linear in the gradient, so backprop may
    be seeded with lr (``seed_scale``, ``fold_lr`` in ``gc.compile``) and the update is
    ``W -= d_W``. Nesterov needs a momentum and no dampening, as in torch.
    """

    fields: ClassVar[tuple[str, ...]] = ("lr", "momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        name = type(self).__name__
        self.lr = _real(name, "lr", lr)
        self.momentum = _real(name, "momentum", momentum)
        self.dampening = _real(name, "dampening", dampening, high=1.0, closed=True)
        self.weight_decay = _real(name, "weight_decay", weight_decay)
        self.nesterov = _flag(name, "nesterov", nesterov)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise OptimizerError(f"{name}: nesterov needs a momentum > 0 and dampening 0, got "
                                 f"momentum={self.momentum!r}, dampening={self.dampening!r}")

    @property
    def counts_steps(self) -> bool:
        # with dampening, the first step's buffer is g, not (1 - dampening) * g
        return self.momentum != 0 and self.dampening != 0

    @property
    def seed_scale(self) -> float:
        return self.lr if self.momentum == 0 and self.weight_decay == 0 else 1.0

    def step_scalars(self, t: Node) -> tuple[Node, ...]:
        """The buffer's gradient coefficient: 1 at step 1, 1 - dampening after."""
        return (1 - self.dampening * ops.minimum(t - 1, 1),)

    def rule(self, w, g, seed_scale, scalars):
        if self.weight_decay:
            g = g + self.weight_decay * w
        if not self.momentum:
            return [assign(w, (self.lr / seed_scale) * g, "-=")]
        b0 = state(f"b_{w.name}", w)
        coefficient = scalars[0] if scalars else 1.0
        b = assign(b0, self.momentum * b0 + coefficient * g)
        step = g + self.momentum * b if self.nesterov else b
        return [b, assign(w, self.lr * step, "-=")]


class Momentum(SGD):
    """SGD with momentum ``mu``, as written before graphc followed torch.optim::

        v <- mu * v - lr * g;  w <- w + v

    computed as ``SGD(lr, momentum=mu)``: b <- mu * b + g;  w <- w - lr * b, the same steps
    for a constant lr (v = -lr * b) up to rounding. The state is the buffer ``b_W``, so a
    checkpoint written with the earlier ``v_W`` is refused rather than misread.
    """

    fields = ("lr", "mu")

    def __init__(self, lr: float = 0.01, mu: float = 0.9) -> None:
        super().__init__(lr, momentum=_real("Momentum", "mu", mu))

    @property
    def mu(self) -> float:
        """The momentum factor (``SGD``'s ``momentum``)."""
        return self.momentum


class RMSProp(Optimizer):
    """RMSProp, as ``torch.optim.RMSprop``::

        g <- g + weight_decay * w                          (if weight_decay)
        s <- alpha * s + (1 - alpha) * g^2
        gbar <- alpha * gbar + (1 - alpha) * g;  s~ = s - gbar^2   (if centered, else s~ = s)
        b <- momentum * b + g / (sqrt(s~) + eps);  w <- w - lr * b  (if momentum)
        w <- w - lr * g / (sqrt(s~) + eps)                 (otherwise)

    ``rho`` is accepted as another name for ``alpha`` (graphc's earlier keyword).
    """

    fields = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, lr: float = 0.01, alpha: float | None = None, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 rho: float | None = None) -> None:
        given = "alpha"
        if rho is not None:
            if alpha is not None:
                raise OptimizerError("RMSProp: alpha and rho name the same decay; give one")
            alpha, given = rho, "rho"
        self.lr = _real("RMSProp", "lr", lr)
        self.alpha = _real("RMSProp", given, 0.99 if alpha is None else alpha, high=1.0)
        self.eps = _real("RMSProp", "eps", eps)
        self.weight_decay = _real("RMSProp", "weight_decay", weight_decay)
        self.momentum = _real("RMSProp", "momentum", momentum)
        self.centered = _flag("RMSProp", "centered", centered)

    @property
    def rho(self) -> float:
        """The decay of the square average (``alpha``), under graphc's earlier name."""
        return self.alpha

    def rule(self, w, g, seed_scale, scalars):
        if self.weight_decay:
            g = g + self.weight_decay * w
        a = self.alpha
        s0 = state(f"s_{w.name}", w)
        s = assign(s0, a * s0 + (1 - a) * ops.square(g))
        nodes, variance = [s], s
        if self.centered:
            gbar0 = state(f"gbar_{w.name}", w)
            gbar = assign(gbar0, a * gbar0 + (1 - a) * g)
            nodes.append(gbar)
            variance = s - ops.square(gbar)
        step = g / (ops.sqrt(variance) + self.eps)
        if self.momentum:
            b0 = state(f"b_{w.name}", w)
            step = assign(b0, self.momentum * b0 + step)
            nodes.append(step)
        return [*nodes, assign(w, self.lr * step, "-=")]


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``::

        g <- g + weight_decay * w                          (if weight_decay: L2 in the gradient)
        m <- beta1 * m + (1 - beta1) * g;  v <- beta2 * v + (1 - beta2) * g^2;  t <- t + 1
        w <- w - lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - beta1^t),
                                                   v_hat = v / (1 - beta2^t)

    eps is added after the bias correction. The betas are given as torch gives them,
    ``betas=(0.9, 0.999)``, or one by one as ``beta1=``, ``beta2=`` (graphc's earlier keywords).
    """

    fields = ("lr", "betas", "eps", "weight_decay")
    #: Whether weight decay is decoupled from the gradient (AdamW) rather than L2 in it.
    decoupled: ClassVar[bool] = False
    #: The weight decay when none is given: 0 for Adam, 0.01 for AdamW, as in torch.optim.
    default_weight_decay: ClassVar[float] = 0.0

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] | None = None,
                 eps: float = 1e-8, weight_decay: float | None = None, *,
                 beta1: float | None = None, beta2: float | None = None) -> None:
        name = type(self).__name__
        if betas is None:
            betas = (0.9 if beta1 is None else beta1, 0.999 if beta2 is None else beta2)
        elif beta1 is not None or beta2 is not None:
            raise OptimizerError(f"{name}: give betas=(beta1, beta2) or beta1=/beta2=, not both")
        elif not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise OptimizerError(
                f"{name}: betas must be a pair (beta1, beta2), got {betas!r}; the earlier "
                f"positional form {name}(lr, beta1, beta2, eps) is now {name}(lr, (beta1, "
                "beta2), eps), as in torch.optim, or pass beta1= and beta2= by keyword")
        self.lr = _real(name, "lr", lr)
        self.beta1 = _real(name, "beta1 (betas[0])", betas[0], high=1.0)
        self.beta2 = _real(name, "beta2 (betas[1])", betas[1], high=1.0)
        self.eps = _real(name, "eps", eps)
        self.weight_decay = _real(name, "weight_decay", self.default_weight_decay
                                  if weight_decay is None else weight_decay)

    @property
    def betas(self) -> tuple[float, float]:
        """(beta1, beta2), as torch.optim names them."""
        return (self.beta1, self.beta2)

    @property
    def counts_steps(self) -> bool:
        return True

    def step_scalars(self, t: Node) -> tuple[Node, ...]:
        """The step size lr / (1 - beta1^t) and the root sqrt(1 - beta2^t) of the second
        moment's bias correction, once per step for every parameter."""
        step_size = self.lr / (1 - self.beta1**t)
        root_correction = ops.sqrt(1 - self.beta2**t)
        step_size.name, root_correction.name = "step_size", "root_correction"
        return step_size, root_correction

    def rule(self, w, g, seed_scale, scalars):
        step_size, root_correction = scalars
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * w
        b1, b2 = self.beta1, self.beta2
        m0, v0 = state(f"m_{w.name}", w), state(f"v_{w.name}", w)
        m = assign(m0, b1 * m0 + (1 - b1) * g)
        v = assign(v0, b2 * v0 + (1 - b2) * ops.square(g))
        step = step_size * m / (ops.sqrt(v) / root_correction + self.eps)
        if self.weight_decay and self.decoupled:
            step = step + (self.lr * self.weight_decay) * w
        return [m, v, assign(w, step, "-=")]


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``::

        w <- w - lr * weight_decay * w - lr * m_hat / (sqrt(v_hat) + eps)

    with m_hat and v_hat as in ``Adam``, from the gradient alone: the decay shrinks the
    weights directly instead of passing through the moments, so it is not rescaled by them.
    weight_decay defaults to 0.01; the other arguments are Adam's.
    """

    decoupled = True
    default_weight_decay = 1e-2


def _real(owner: str, name: str, value: object, high: float = math.inf,
          closed: bool = False) -> float:
    """``value`` as a float, checked to be a real number in [0, high) ([0, high] if
    ``closed``); an OptimizerError naming the optimizer and the argument otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise OptimizerError(f"{owner}: {name} must be a real number, got {value!r} "
                             f"({type(value).__name__})")
    x = float(value)
    if math.isnan(x) or x < 0 or x > high or (x == high and not closed):
        where = ">= 0 and finite" if high == math.inf else \
            f"in [0, {high:g}{']' if closed else ')'}"
        raise OptimizerError(f"{owner}: {name} must be {where}, got {value!r}")
    return x


def _flag(owner: str, name: str, value: object) -> bool:
    """``value`` checked to be a bool (``nesterov``, ``centered``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise OptimizerError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)
