"""Matrix products that add into an existing array, through NumPy's own BLAS.

``np.matmul`` cannot accumulate: ``W -= x.T @ g`` is a product into a scratch array, then a
second pass over W. BLAS gemm computes ``C = alpha * A @ B + beta * C`` in one call, so with
beta=1 an SGD update folds into its weight-gradient product (the ``gemm`` pass).

NumPy exposes no gemm, and SciPy's ``scipy.linalg.blas.sgemm`` runs on a second BLAS library,
the OpenBLAS that SciPy bundles: two BLAS libraries in one step keep two thread pools that
fight over the cores (shared/performance-notes.md), and on our machines SciPy's build is also
slower than NumPy's for the products of an MLP step, 1.03x to 3.9x (docs/benchmarks.md,
``benchmarks/gemm_fold.py``). So ``_gemm`` calls
the BLAS that NumPy itself calls for ``@`` (the OpenBLAS its wheels bundle), through ctypes.
Where that library cannot be found (a NumPy built against another BLAS), or for arrays it
cannot pass without a copy, ``_gemm`` computes the same result with ``np.matmul``.

The functions below are printed into each generated module that calls them (``SOURCE``), so a
saved module still imports nothing but numpy and the standard library; graphc calls them to
test them and to tell whether the pass can make anything faster (``numpy_blas_found``).
"""

from __future__ import annotations

import inspect

import numpy as np


def _numpy_gemm():
    """NumPy's own BLAS gemm by dtype character ("f": sgemm, "d": dgemm), through ctypes; {}
    where NumPy's wheel bundles no BLAS library that this process can reach."""
    import ctypes
    import os

    here = os.path.dirname(np.__file__)
    for folder in (os.path.join(here, os.pardir, "numpy.libs"), os.path.join(here, ".dylibs")):
        try:
            names = sorted(os.listdir(folder))
        except OSError:  # no such folder: NumPy not from a wheel, or not this platform's
            continue
        for name in (n for n in names if "blas" in n.lower()):
            try:
                lib = ctypes.CDLL(os.path.join(folder, name))
            except OSError:
                continue
            # scipy-openblas64 (NumPy's wheels): scipy_cblas_sgemm64_ with 64-bit integers
            for symbol, index in (("scipy_cblas_{}gemm64_", ctypes.c_int64),
                                  ("cblas_{}gemm64_", ctypes.c_int64),
                                  ("scipy_cblas_{}gemm", ctypes.c_int),
                                  ("cblas_{}gemm", ctypes.c_int)):
                found = {}
                for char, letter, scalar in (("f", "s", ctypes.c_float),
                                             ("d", "d", ctypes.c_double)):
                    fn = getattr(lib, symbol.format(letter), None)
                    if fn is None:
                        break
                    fn.argtypes = [ctypes.c_int] * 3 + [index] * 3 + [
                        scalar, ctypes.c_void_p, index, ctypes.c_void_p, index,
                        scalar, ctypes.c_void_p, index]
                    fn.restype = None
                    found[char] = fn
                else:
                    return found
    return {}


_GEMM = _numpy_gemm()


def _layout(x):
    """(CBLAS transpose flag, leading dimension) of a matrix stored row by row (111, no
    transpose), or of the transpose of one (112: ``a.T`` costs no copy); None otherwise."""
    size = x.itemsize
    (rows, cols), (down, across) = x.shape, x.strides
    if across == size and down % size == 0 and down >= size * max(cols, 1):
        return 111, down // size
    if down == size and across % size == 0 and across >= size * max(rows, 1):
        return 112, across // size
    return None


def _gemm(a, b, c, alpha, beta):
    """``c = alpha * (a @ b) + beta * c``, in place, in one call of NumPy's own BLAS gemm:
    where np.matmul needs a scratch product and a second pass over c. For matrices (2-D) c
    that shares no memory with a or b; other layouts take the same result from np.matmul."""
    gemm = _GEMM.get(c.dtype.char)
    la, lb = _layout(a), _layout(b)
    if (gemm is None or la is None or lb is None or a.dtype != c.dtype or b.dtype != c.dtype
            or not (c.flags.c_contiguous and c.flags.writeable and c.flags.aligned
                    and a.flags.aligned and b.flags.aligned)
            or 0 in a.shape + c.shape
            or np.may_share_memory(c, a) or np.may_share_memory(c, b)):
        if beta != 1:
            c *= beta
        c += alpha * (a @ b)
        return c
    (m, k), n = a.shape, c.shape[1]
    # CBLAS on row-major arrays (101), writing c in place
    gemm(101, la[0], lb[0], m, n, k, alpha, a.ctypes.data, la[1], b.ctypes.data, lb[1],
         beta, c.ctypes.data, n)
    return c


def numpy_blas_found() -> bool:
    """Whether ``_gemm`` reaches NumPy's BLAS here (else it falls back to np.matmul)."""
    return bool(_GEMM)


#: The helpers as the generated module defines them, and every name they define there.
SOURCE = inspect.getsource(_numpy_gemm) + "\n\n_GEMM = _numpy_gemm()\n\n\n" + \
    "\n\n".join(inspect.getsource(f) for f in (_layout, _gemm))
NAMES = frozenset({"_GEMM"} | {f.__name__ for f in (_numpy_gemm, _layout, _gemm)})
