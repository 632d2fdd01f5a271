"""Reverse-mode automatic differentiation as a graph-to-graph transformation.

Walks the graph from the output back, asks each op for its vector-Jacobian product (built
from graph ops, so the gradient is itself a graph that can be compiled, rendered and
differentiated again), and adds the contributions where a value fans out: gradients add at
branches.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import sympy as sp

from graphc.errors import GraphcError, ShapeError
from graphc.ir.graph import consumers, display_name, topological_order
from graphc.ir.node import Node
from graphc.ir.shapes import format_shape
from graphc.ops.elementwise import from_expr
from graphc.ops.leaves import constant
from graphc.ops.registry import make, role


def grad(y: Node, wrt: Sequence[Node] | Node, upstream: Node | None = None, *,
         seed: Node | None = None) -> list[Node]:
    """The gradients of ``y`` with respect to each node of ``wrt``, as graph nodes.

    ``y`` must be a scalar unless ``upstream`` (the gradient flowing into ``y`` from above,
    shaped like ``y``: a vector-Jacobian product's vector) is given. A node that ``y`` does
    not depend on gets zeros, with a warning. ``seed=`` is the former name of ``upstream``
    (deprecated: everywhere else in graphc a seed seeds a random generator).
    """
    if seed is not None:
        warnings.warn("grad(seed=...) is deprecated: the upstream gradient is passed as "
                      "upstream=", DeprecationWarning, stacklevel=2)
        if upstream is not None:
            raise GraphcError("grad: pass the upstream gradient once, as upstream=")
        upstream = seed
    targets = _check_arguments(y, wrt, upstream)
    with role("backward"):
        if upstream is None:
            if y.shape != ():
                raise ShapeError(f"grad: the output must be a scalar, got shape "
                                 f"{format_shape(y.shape)}; sum it or pass upstream=")
            upstream = constant(1.0, dtype=y.dtype)
        adjoints = backpropagate(y, upstream)
        out = []
        for x in targets:
            g = adjoints.get(x.id)
            if g is None:
                warnings.warn(f"grad: the output does not depend on {x!r}; its gradient is "
                              "zeros", stacklevel=2)
                g = make("zeros_like", (x,))
            if x.name and g.name is None and g.role == "backward":
                g.name = f"d_{x.name}"
            out.append(g)
    return out


def _check_arguments(y: object, wrt: object, upstream: object) -> list[Node]:
    """The nodes to differentiate with respect to; a GraphcError (a ShapeError for an
    upstream gradient of the wrong shape) names an argument that is not a graph node."""
    if not isinstance(y, Node):
        raise GraphcError(f"grad: the output must be a graph node, got {y!r} "
                          f"({type(y).__name__})")
    if isinstance(wrt, Node):
        targets = [wrt]
    elif isinstance(wrt, Iterable) and not isinstance(wrt, str):
        targets = list(wrt)
    else:
        raise GraphcError(f"grad: wrt must be a node or a list of nodes, got {wrt!r} "
                          f"({type(wrt).__name__})")
    for i, x in enumerate(targets):
        if not isinstance(x, Node):
            raise GraphcError(f"grad: wrt[{i}] is {x!r} ({type(x).__name__}), not a graph "
                              "node; pass the inputs or parameters to differentiate with "
                              "respect to")
    if upstream is not None:
        if not isinstance(upstream, Node):
            raise GraphcError(f"grad: upstream must be a graph node shaped like the output, "
                              f"got {upstream!r} ({type(upstream).__name__})")
        if upstream.shape != y.shape:
            raise ShapeError(f"grad: the upstream gradient has shape "
                             f"{format_shape(upstream.shape)} but the output "
                             f"{format_shape(y.shape)}; they must be the same")
    return targets


def backpropagate(y: Node, seed: Node) -> dict[int, Node]:
    """The adjoint (gradient) node of every node ``y`` depends on, by node id."""
    with role("backward"):
        return _backpropagate(y, seed)


def _backpropagate(y: Node, seed: Node) -> dict[int, Node]:
    order = topological_order([y])
    users = consumers(order)
    adjoints: dict[int, Node] = {y.id: seed}
    for node in reversed(order):
        g = adjoints.get(node.id)
        if g is None or not node.inputs or not node.op.differentiable:
            continue
        name = display_name(node, users.get(node.id, []))
        if name and g.name is None and g.role == "backward":
            g.name = f"d_{name}"
        for x, gx in zip(node.inputs, node.op.vjp(node, g)):
            if gx is None:
                continue
            prev = adjoints.get(x.id)
            adjoints[x.id] = gx if prev is None else _accumulate(prev, gx)
    return adjoints


def _accumulate(a: Node, b: Node) -> Node:
    """a + b: the gradient of a value read in two places is the sum of both."""
    u, v = sp.symbols("u v", real=True)
    return from_expr("+", u + v, {u: a, v: b})
