"""What folding an SGD update into its weight-gradient product buys, matrix by matrix.

For each weight shape of the MLP step (and two smaller ones) and each batch size, the update
``W -= x.T @ g`` timed four ways in the same rounds:

- ``plain``: ``np.matmul(x.T, g, out=dW)`` then ``np.subtract(W, dW, out=W)`` (optimize=2);
- ``gemm``: graphc's ``_gemm(x.T, g, W, -1.0, 1.0)``, one call of NumPy's own BLAS through
  ctypes (optimize=3);
- ``scipy``: ``scipy.linalg.blas.sgemm`` / ``dgemm`` with beta=1, on SciPy's own BLAS;
- ``scipy_product``: SciPy's gemm for the product alone (beta=0), against ``np.matmul``'s
  ``product``: whether SciPy's library is as fast as NumPy's for the same call.

The ratios to ``plain`` are what the gemm pass's ``MIN_SIZE`` threshold rests on.
Run: python -m benchmarks.gemm_fold [--threads 1] [--repeats 21]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from benchmarks.harness import BenchmarkUnavailable, compare, machine_description, table
from graphc.ops.blas import _gemm

SHAPES = ((784, 256), (256, 256), (256, 64), (256, 10))


def factories(rows: int, cols: int, batch: int, dtype: np.dtype) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, rows)).astype(dtype)
    g = rng.standard_normal((batch, cols)).astype(dtype)
    W, dW = rng.standard_normal((rows, cols)).astype(dtype), np.empty((rows, cols), dtype)

    def scipy_gemm():
        try:
            from scipy.linalg import blas
        except ImportError as err:
            raise BenchmarkUnavailable("scipy is not installed") from err
        return blas.sgemm if dtype == np.float32 else blas.dgemm

    def plain():
        return lambda: (np.matmul(x.T, g, out=dW), np.subtract(W, dW, out=W))

    def scipy():
        gemm = scipy_gemm()
        # SciPy's BLAS is column-major: W.T (a column-major view) -= g.T @ x
        return lambda: gemm(-1.0, g.T, x, beta=1.0, c=W.T, overwrite_c=1)

    def scipy_product():
        gemm = scipy_gemm()
        return lambda: gemm(1.0, g.T, x, c=dW.T, overwrite_c=1)

    return {"plain": plain, "gemm": lambda: lambda: _gemm(x.T, g, W, -1.0, 1.0),
            "scipy": scipy, "product": lambda: lambda: np.matmul(x.T, g, out=dW),
            "scipy_product": scipy_product}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gemm_fold",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 1024])
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    print(machine_description(), flush=True)
    for dtype in map(np.dtype, args.dtype):
        for rows, cols in SHAPES:
            for batch in args.batch:
                samples = compare(factories(rows, cols, batch, dtype), repeats=args.repeats,
                                  inner=max(2, 4096 // batch), threads=args.threads)
                print(f"\n## W {rows}x{cols}, batch {batch}, {dtype}\n\n"
                      f"{table(samples, baselines=('plain', 'product'))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
