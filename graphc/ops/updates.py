"""In-place updates of parameters and optimizer state: the last section of a training step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import sympy as sp

from graphc.errors import ShapeError
from graphc.ir.node import Node
from graphc.ir.shapes import broadcast_shapes, format_shape
from graphc.ops.elementwise import arg, lambdify, print_expression, ufunc_code, ufunc_storage
from graphc.ops.flat import HELD, holds_leaves
from graphc.ops.registry import Op, make

MODES = ("=", "+=", "-=")


class Assign(Op):
    """``target <mode> expr(inputs[1:])``, in place: ``W1 -= 0.01*d_W1``, ``m[...] = ...``.

    The node's value is the updated target, so a later update can read it (Adam's weight
    update reads the new moments). The expression is elementwise, so fusion can fold the
    node computing the update into the statement that applies it.
    """

    name = "assign"
    fresh = True
    differentiable = False

    def label(self, node):
        return node.attrs["mode"]

    def infer(self, inputs, attrs):
        target, *values = inputs
        if not (target.op.name in HELD or target.op.name == "flat" and holds_leaves(target)):
            raise ShapeError(f"only parameters and optimizer state can be updated, not {target!r}")
        shape = broadcast_shapes(target.shape, *(v.shape for v in values))
        if shape != target.shape:
            raise ShapeError(f"an update of shape {format_shape(shape or ())} does not fit "
                             f"{target.name} of shape {format_shape(target.shape)}")
        return target.shape, target.dtype

    def evaluate(self, node, args):
        target, *values = args
        value = lambdify(node.attrs["expr"], len(values))(*values)
        mode = node.attrs["mode"]
        new = value if mode == "=" else target + value if mode == "+=" else target - value
        return np.broadcast_to(np.asarray(new, dtype=node.dtype), target.shape).copy()

    def updates(self, node):
        return 0

    def storage(self, node):
        """The ufunc calls of the update's expression. Only a "=" update computes straight
        into its target (which its expression may read: ``m = 0.9*m + 0.1*g``); "+=" and
        "-=" compute into a scratch array first, and ``W -= v`` is in place already."""
        mode, expr = node.attrs["mode"], node.attrs["expr"]
        if mode != "=" and isinstance(expr, sp.Symbol):
            return ()
        ways = ufunc_storage(node, first=1, alias=node.inputs[0] if mode == "=" else None)
        if mode != "=":
            ways = tuple(replace(w, overwrites=w.overwrites - {0}) for w in ways)
        return ways

    def emit(self, node, args, e):
        target = args[0]
        expr, mode = node.attrs["expr"], node.attrs["mode"]
        lhs = f"{target}[...]" if mode == "=" else target
        arrays = e.arrays(node)
        if arrays is None:
            e.need_helpers(expr)
            return [f"{lhs} {mode} {print_expression(expr, node, args, first=1)}"]
        lines = ufunc_code(node, args, arrays, e, first=1)
        if arrays.out != target:  # computed into a scratch array: apply it
            lines.append(f"{lhs} {mode} {arrays.out}")
        return lines


def assign(target: Node, value: Node, mode: str = "=") -> Node:
    """Update ``target`` in place with ``value`` (mode "=", "+=" or "-=")."""
    if mode not in MODES:
        raise ValueError(f"assign mode must be one of {MODES}, got {mode!r}")
    if value.op.name == "elementwise":
        return make("assign", (target, *value.inputs), expr=value.attrs["expr"], mode=mode)
    return make("assign", (target, value), expr=arg(0), mode=mode)


class GemmUpdate(Op):
    """``target += alpha * (a @ b)`` in place, in one BLAS gemm call with beta=1.

    What the gemm pass makes of an SGD update ``W -= x.T @ g`` (alpha = -1): np.matmul cannot
    add into W, gemm can, so the weight gradient never exists as an array of its own. The
    node's value is the updated target, as for ``assign``.
    """

    name = "gemm_update"
    differentiable = False

    def label(self, node):
        return f"{'-' if node.attrs['alpha'] < 0 else '+'}= @ (gemm)"

    def infer(self, inputs, attrs):
        target, a, b = inputs
        if (a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]
                or (a.shape[0], b.shape[1]) != target.shape):
            raise ShapeError(f"gemm_update needs matrices whose product fits {target.name} of "
                             f"shape {format_shape(target.shape)}, got "
                             f"{format_shape(a.shape)} @ {format_shape(b.shape)}")
        return target.shape, target.dtype

    def evaluate(self, node, args):
        target, a, b = args
        return (target + node.attrs["alpha"] * (a @ b)).astype(node.dtype)

    def updates(self, node):
        return 0

    def emit(self, node, args, e):
        target, a, b = args
        e.helpers.add("gemm")
        alpha = node.attrs["alpha"]
        scale = "" if abs(alpha) == 1 else f"{abs(alpha)!r} * "
        return [f"# {target} {'-' if alpha < 0 else '+'}= {scale}{a} @ {b}, in one BLAS call "
                "that adds the product into it",
                f"_gemm({a}, {b}, {target}, alpha={alpha!r}, beta=1.0)"]


def gemm_update(target: Node, a: Node, b: Node, alpha: float) -> Node:
    """``target += alpha * (a @ b)`` in place, by BLAS gemm."""
    return make("gemm_update", (target, a, b), alpha=float(alpha))
