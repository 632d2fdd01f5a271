"""The gemm pass: an SGD update folded into its weight-gradient product.

In NumPy, ``W -= x.T @ g`` is a product into a scratch array and then a second pass over W,
because np.matmul cannot add into an existing array. BLAS gemm can (beta=1), so this pass
rewrites such an update into one ``gemm_update`` node, printed as
``_gemm(x.T, g, W, alpha=-1.0, beta=1.0)``: W is read and written once, and the weight
gradient is never stored. ``graphc/ops/blas.py`` says why the call goes to NumPy's own
BLAS rather than SciPy's.

The pass is off at optimize=2 and on at optimize=3 (or by name in ``passes=[...]``), so a
reader can compare the plain NumPy step with the folded one.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import sympy as sp

from graphc.ir.graph import Graph, consumers
from graphc.ir.node import Node
from graphc.ir.shapes import sizes_of
from graphc.ops.blas import numpy_blas_found
from graphc.ops.elementwise import arg
from graphc.ops.updates import gemm_update
from graphc.passes.rewriting import replacing, rewrite

#: Targets with fewer elements keep ``W -= d_W``: a gemm call through ctypes costs about
#: 10 microseconds of Python, more than NumPy's pass over a small matrix saves.
MIN_SIZE = 2**16

BLAS_DTYPES = (np.dtype("float32"), np.dtype("float64"))


def gemm(graph: Graph) -> Graph:
    """Fold every update ``target -= c * (a @ b)`` whose product nothing else reads into one
    gemm call (see ``fold_update``); the graph as it was where NumPy's BLAS is out of reach."""
    if not numpy_blas_found():
        warnings.warn("the gemm pass found no BLAS library in NumPy's package to call through "
                      "ctypes (a NumPy built against another BLAS?): updates stay W -= d_W",
                      stacklevel=2)
        return graph
    users = consumers(graph.nodes())

    def local(node: Node, original: Node) -> Node | None:
        product = original.inputs[1] if original.op.name == "assign" else None
        if product is None or len(users.get(product.id, [])) != 1:
            return None
        return fold_update(node)

    return rewrite(graph, local)


def fold_update(node: Node) -> Node | None:
    """``target -= c * (a @ b)`` (or ``+=``, c a number) -> ``gemm_update(target, a, b, -c)``.

    Only for matrices of one BLAS dtype, a target of at least ``MIN_SIZE`` elements, and
    operands that are not views of a parameter or optimizer state: those may be updated
    before this statement runs, and gemm must not read what it writes.
    """
    if node.op.name != "assign" or node.attrs["mode"] not in ("-=", "+=") or \
            len(node.inputs) != 2:
        return None
    target, product = node.inputs
    scale = node.attrs["expr"] / arg(0)
    if product.op.name != "matmul" or not isinstance(scale, sp.Number):
        return None
    a, b = product.inputs
    sizes = sizes_of(target.shape)
    if (a.ndim != 2 or b.ndim != 2 or target.dtype not in BLAS_DTYPES
            or {a.dtype, b.dtype, product.dtype} != {target.dtype}
            or sizes is None or math.prod(sizes) < MIN_SIZE
            or _reads_state(a) or _reads_state(b)):
        return None
    sign = -1.0 if node.attrs["mode"] == "-=" else 1.0
    return replacing(node, gemm_update(target, a, b, sign * float(scale)))


def _reads_state(node: Node) -> bool:
    """Whether ``node``'s array may be a parameter, optimizer state or an updated value:
    itself one, or a view (an op that may return one) of one."""
    if node.op.name in ("param", "state") or node.role == "update":
        return True
    return not node.op.fresh and any(_reads_state(x) for x in node.inputs)
