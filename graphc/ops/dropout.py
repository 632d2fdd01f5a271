"""Inverted dropout: in a training step, each entry is kept with probability 1 - rate and
scaled by 1 / (1 - rate), so the expected value is unchanged; in evaluation it is the identity.

The randomness is a value the program owns, like a parameter: a draw counter, an int64
``state`` leaf. A training step draws its mask from ``np.random.default_rng((seed, draws))``
and advances the counter, so the masks depend only on the seed and on how many steps ran:
the same seed gives the same masks at every run. The counter is a plain array, saved and
restored with the other state (``Program.save``, the trainer's checkpoints), so a resumed run
draws the masks the uninterrupted run would have. A ``Generator`` object held instead would
be state that ``np.savez`` can only pickle.

The mask is a node: the forward multiplies by it and the gradient, ``dropout(g, mask)``,
reads the same node, so both see the same draw. The reference interpreter, like the
evaluation program, computes inference values: there the mask is all ones.
"""

from __future__ import annotations

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.node import Node
from graphc.ir.shapes import format_shape
from graphc.ir.source import caller_location
from graphc.ops.registry import OPS, Op, float_dtype, make


class DropoutMask(Op):
    """The mask for x: Bernoulli(1 - rate) entries scaled by 1 / (1 - rate) in a training
    step (advancing the draw counter, the op's second input); ones in evaluation."""

    name = "dropout_mask"
    fresh = True
    differentiable = False

    def label(self, node):
        return "dropout mask"

    def infer(self, inputs, attrs):
        x, draws = inputs
        return x.shape, float_dtype(x)

    def evaluate(self, node, args):
        return np.ones(args[0].shape, dtype=node.dtype)

    def emit(self, node, args, e):
        t, draws, shape = e.target(node), args[1], e.shape(node.shape)
        if not e.training:
            return f"np.broadcast_to(np.{node.dtype.name}(1.0), {shape})"
        rate, rng = node.attrs["rate"], e.tmp("rng")
        return [f"{rng} = np.random.default_rng(({node.attrs['seed']}, int({draws})))",
                f"{draws} += 1",
                f"{t} = ({rng}.random({shape}) >= {rate!r}).astype(np.{node.dtype.name}) "
                f"/ (1 - {rate!r})"]


class Dropout(Op):
    """``x * mask`` in a training step, ``x`` itself in evaluation (no copy)."""

    name = "dropout"

    def infer(self, inputs, attrs):
        x, mask = inputs
        if x.shape != mask.shape:
            raise ShapeError(f"the mask's shape {format_shape(mask.shape)} differs from the "
                             f"input's {format_shape(x.shape)}")
        return x.shape, float_dtype(x)

    def evaluate(self, node, args):
        x, mask = args
        return np.asarray(x * mask, dtype=node.dtype)

    def emit(self, node, args, e):
        return f"{args[0]} * {args[1]}" if e.training else args[0]

    def vjp(self, node, g):
        return [make("dropout", (g, node.inputs[1])), None]


def dropout(x: Node, rate: float, seed: int = 0) -> Node:
    """Zero each entry of x with probability ``rate`` in training steps and scale the others
    by 1 / (1 - rate); the identity in evaluation (``gc.compile`` without an optimizer).

    Masks come from ``seed`` and a per-dropout draw counter that the program owns: the same
    seed gives the same masks at every run. Give each dropout in a network its own seed, or
    two of the same shape would draw the same masks.
    """
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate!r}")
    draws = Node(OPS["state"], (), {}, (), np.dtype("int64"), name="dropout_draws",
                 location=caller_location(), value=np.zeros((), np.int64))
    mask = make("dropout_mask", (x, draws), rate=float(rate), seed=int(seed))
    return make("dropout", (x, mask))
