"""The exceptions graphc raises. Each names what is wrong and where."""

from __future__ import annotations


class GraphcError(Exception):
    """Base class of every error graphc raises on purpose."""


class ShapeError(GraphcError, ValueError):
    """An op was declared on operands whose shapes do not fit together."""


class FeedError(GraphcError, ValueError):
    """A program was called with a missing, extra, mis-shaped or mis-typed input."""


class DataError(GraphcError, ValueError):
    """A data file or array is malformed: wrong magic, truncated, mismatched counts, bad labels."""


class ExpressionError(GraphcError, ValueError):
    """An elementwise expression (``gc.from_sympy``) holds something graphc cannot compute
    over real arrays: a complex number, an infinity, unevaluated calculus, a matrix."""


class NumericsError(GraphcError, FloatingPointError):
    """A node produced NaN or Inf while check_numerics was on."""


class OptimizerError(GraphcError, ValueError):
    """An optimizer was given a hyperparameter of the wrong type or out of its range, or a
    parameter it cannot update (an integer one)."""


class CheckpointError(GraphcError):
    """A checkpoint cannot be read (missing, truncated, failing its checksum, with bad
    metadata) or written (a full or read-only disk, a file where its directory should be)."""


class GradientCheckError(GraphcError):
    """``check_grads``: a derived gradient disagrees with central finite differences."""
