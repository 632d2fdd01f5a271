"""graphc: a symbolic computational-graph compiler for neural networks.

Declare a network as a graph of nodes, derive its gradients as graph ops, and compile it to
readable, vectorized NumPy code::

    import graphc as gc
    x = gc.input("x", ("batch", 64))
    W = gc.param("W", (64, 10), init="glorot")
    loss = gc.softmax_cross_entropy(x @ W, gc.input("y", ("batch",), dtype="int64"))
    step = gc.compile([loss], [x, y], optimizer=gc.SGD(0.1))
"""

from graphc.compiler import compile
from graphc.errors import (
    CheckpointError,
    DataError,
    ExpressionError,
    FeedError,
    GradientCheckError,
    GraphcError,
    NumericsError,
    OptimizerError,
    ShapeError,
)
from graphc.example import Example
from graphc.gradcheck import check_grads
from graphc.interpreter import evaluate
from graphc.ir.graph import to_networkx
from graphc.ir.node import Node
from graphc.losses import accuracy, hinge, l1, l2_penalty, mse, sigmoid_cross_entropy
from graphc.ops.api import (
    ACTIVATIONS,
    abs,
    argmax,
    concatenate,
    divide,
    exp,
    flatten,
    from_sympy,
    log,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    minimum,
    one_hot,
    reshape,
    softmax,
    softmax_cross_entropy,
    sqrt,
    square,
    sum,
    take,
    tanh,
    transpose,
    where,
)
from graphc.ops.conv import conv2d
from graphc.ops.dropout import dropout
from graphc.ops.leaves import constant, input, param, scalar, seed
from graphc.ops.pool import avg_pool2d, max_pool2d
from graphc.passes.autodiff import grad
from graphc.render import render, render_steps
from graphc.render.viewer import view
from graphc.train.optimizers import SGD, Adam, AdamW, Momentum, Optimizer, RMSProp
from graphc.train.trainer import Trainer, reinit

__version__ = "0.1.0"

__all__ = [
    "Adam", "AdamW", "CheckpointError", "DataError", "Example", "ExpressionError", "FeedError",
    "GraphcError",
    "Momentum", "Node", "NumericsError", "Optimizer", "OptimizerError", "RMSProp", "SGD",
    "ShapeError", "abs", "accuracy",
    "argmax", "compile", "concatenate", "constant", "divide", "evaluate", "exp", "flatten",
    "from_sympy", "grad", "hinge", "input", "l1", "l2_penalty", "log",
    "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "minimum", "mse", "one_hot",
    "param", "reshape", "scalar", "seed", "sigmoid_cross_entropy", "softmax",
    "softmax_cross_entropy", "sqrt", "square", "sum", "take", "tanh", "transpose",
    "where", "render", "render_steps", "view", "conv2d", "max_pool2d", "avg_pool2d", "dropout",
    "GradientCheckError", "check_grads", "to_networkx", "Trainer", "reinit",
]

# gc.relu, gc.sigmoid, gc.gelu, gc.mish...: one per record of graphc.ops.functions
globals().update(ACTIVATIONS)
__all__ += sorted(ACTIVATIONS)
