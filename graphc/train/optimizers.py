"""Optimizers as update rules made of graph ops, compiled into the training step.

Each rule reads like its textbook form; the code generator turns it into in-place updates
(``W1 -= 0.01*d_W1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from graphc.ir.node import Node
from graphc.ops import api as ops
from graphc.ops.leaves import state
from graphc.ops.registry import role
from graphc.ops.state import assign


class Optimizer:
    """Builds the update nodes of a training step from parameters and their gradients."""

    @property
    def seed_scale(self) -> float:
        """What backpropagation may be seeded with instead of 1 when the update is linear
        in the gradient (SGD: the learning rate), so the scaling costs no pass of its own."""
        return 1.0

    def updates(self, params: Sequence[Node], grads: Sequence[Node],
                seed_scale: float = 1.0) -> list[Node]:
        """The update nodes, given gradients that are ``seed_scale`` times the true ones."""
        with role("update"):
            return [u for p, g in zip(params, grads) for u in self.rule(p, g, seed_scale)]

    def rule(self, w: Node, g: Node, seed_scale: float = 1.0) -> list[Node]:
        raise NotImplementedError


@dataclass
class SGD(Optimizer):
    """w <- w - lr * g"""

    lr: float = 0.01

    @property
    def seed_scale(self) -> float:
        return self.lr

    def rule(self, w, g, seed_scale=1.0):
        return [assign(w, (self.lr / seed_scale) * g, "-=")]


@dataclass
class Momentum(Optimizer):
    """v <- mu * v - lr * g;  w <- w + v"""

    lr: float = 0.01
    mu: float = 0.9

    def rule(self, w, g, seed_scale=1.0):
        v0 = state(f"v_{w.name}", w)
        v = assign(v0, self.mu * v0 - self.lr * g)
        return [v, assign(w, v, "+=")]


@dataclass
class RMSProp(Optimizer):
    """s <- rho * s + (1 - rho) * g^2;  w <- w - lr * g / (sqrt(s) + eps)"""

    lr: float = 0.001
    rho: float = 0.9
    eps: float = 1e-8

    def rule(self, w, g, seed_scale=1.0):
        s0 = state(f"s_{w.name}", w)
        s = assign(s0, self.rho * s0 + (1 - self.rho) * ops.square(g))
        return [s, assign(w, self.lr * g / (ops.sqrt(s) + self.eps), "-=")]


@dataclass
class Adam(Optimizer):
    """m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  t <- t + 1;
    w <- w - lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)"""

    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def updates(self, params, grads, seed_scale=1.0):
        with role("update"):
            t0 = state("t", params[0], shape=())
            t = assign(t0, t0 + 1)
            step = self.lr * ops.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
            return [t] + [u for p, g in zip(params, grads) for u in self._rule(p, g, step)]

    def _rule(self, w, g, step):
        m0, v0 = state(f"m_{w.name}", w), state(f"v_{w.name}", w)
        m = assign(m0, self.beta1 * m0 + (1 - self.beta1) * g)
        v = assign(v0, self.beta2 * v0 + (1 - self.beta2) * ops.square(g))
        return [m, v, assign(w, step * m / (ops.sqrt(v) + self.eps), "-=")]
