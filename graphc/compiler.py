"""``gc.compile``: from output nodes to a running program, in two steps: ``build_step``
makes the graph a program computes (for a training step: stabilize, the gradients, the
optimizer's updates), and ``lower`` runs the pass pipeline over it and hands it to the NumPy
backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from graphc.backend.printer import CodeOptions, header_for
from graphc.backend.program import Program
from graphc.errors import GraphcError, ShapeError
from graphc.feeds import FeedPlan, leaf_name
from graphc.ir.graph import Graph, consumers, display_name, topological_order
from graphc.ir.node import Node
from graphc.ir.shapes import format_shape
from graphc.ops.leaves import constant
from graphc.ops.registry import make
from graphc.passes.autodiff import grad
from graphc.passes.pipeline import pass_names, run_pipeline
from graphc.passes.stabilize import stabilize


def compile(outputs: Sequence[Node] | Node, inputs: Sequence[Node] = (), *,  # noqa: A001
            optimizer=None, optimize: int = 2, passes: Sequence[str] | None = None,
            memory: bool | None = None, training: bool | None = None,
            check_numerics: bool = False, fold_lr: bool | None = None) -> Program:
    """Compile ``outputs`` into a NumPy program taking ``inputs`` as keyword arguments.

    ``inputs`` are input nodes and, optionally, parameters: a parameter listed there is an
    argument of the program, fed at each call like an input (a gradient check, or your own
    optimizer, can then run the loss and its gradients at weights of its choosing); the
    program holds the other parameters (``prog.params``).
    With an ``optimizer`` (``gc.SGD(0.1)``, ``gc.Adam()``), ``outputs[0]`` is the loss, a
    scalar: its gradients with respect to every parameter it depends on and the program
    holds are derived and the optimizer's update is compiled into the same step, which
    updates those parameters in place. A parameter listed in ``inputs`` is a constant of
    the step: it gets no gradient and no update.
    ``optimize`` (0, 1, 2, 3) picks the passes: 0 none, 1 stabilize and cse, 2 adds fold_lr,
    fuse, simplify and flatten (the optimizer's updates of all parameters as one update of
    flat arrays, which the program keeps the parameters and their state as views of), 3 adds
    gemm (large SGD updates folded into their gradient products, one BLAS call each);
    ``passes=[...]`` names them exactly. One name in the list is not a
    graph rewrite: ``fold_lr`` seeds backpropagation with an SGD learning rate instead of 1
    when the step is built, so every gradient comes out already scaled and each update is
    one subtraction (``W -= d_W``, d_W holding lr times the gradient; ``fold_lr=`` overrides
    the list).
    ``memory`` says whether the backend keeps the step's arrays in buffers allocated once
    and reused at every call (graphc.backend.memory), a step after the passes rather than
    one of them: None (the default) plans them at optimize 2 and 3, and not where
    ``passes=[...]`` is given; a level's list of passes with the same ``memory`` gives the
    level's code, its header aside (``graphc.passes.pipeline.LEVELS[2]`` with
    ``memory=True`` that of optimize=2). "memory" in ``passes`` still means
    ``memory=True``, with a DeprecationWarning.
    ``training`` (default: whether an optimizer is given) switches on training-only ops such
    as dropout. ``check_numerics`` makes each call raise a NumericsError naming the first
    node of the graph as declared that produced NaN or Inf (its op, variable and line), at
    every optimize level, fused or not, with nothing updated (backend.numerics); off, it
    costs nothing.
    """
    outputs = [outputs] if isinstance(outputs, Node) else list(outputs)
    inputs = list(inputs)
    _check_inputs(outputs, inputs)
    pass_list, planned = pass_names(optimize, passes, memory)
    step = build_step(outputs, inputs, optimizer, stabilized="stabilize" in pass_list,
                      fold_lr="fold_lr" in pass_list if fold_lr is None else fold_lr)
    return lower(step, inputs, pass_list, header_for(outputs, optimize if passes is None else -1),
                 CodeOptions(training=optimizer is not None if training is None else training,
                             check_numerics=check_numerics), planned=planned)


@dataclass(frozen=True)
class Step:
    """What a program computes, before the optimizing passes: its ``graph`` (the outputs
    and, for a training step, the optimizer's updates as effects) and the learning rate
    backpropagation was seeded with (1.0 where it was not folded)."""

    graph: Graph
    lr_scale: float = 1.0


def build_step(outputs: Sequence[Node], inputs: Sequence[Node] = (), optimizer=None, *,
               stabilized: bool = True, fold_lr: bool = False) -> Step:
    """The graph a program computes: ``outputs`` as they are, or, with an ``optimizer``, the
    training step of the loss ``outputs[0]``: the gradients of the loss with respect to every
    parameter it reads that is not fed in ``inputs``, derived from the stable form of the
    forward graph where ``stabilized``, and the optimizer's updates (with the learning rate
    folded into the seed of backpropagation where ``fold_lr`` and the update allows it)."""
    outputs = list(outputs)
    name_after_variables(outputs)
    if optimizer is None:
        return Step(Graph(tuple(outputs)))
    if outputs[0].shape != ():
        raise ShapeError(f"compile: with an optimizer, outputs[0] is the loss and must be a "
                         f"scalar, but {outputs[0]!r} has shape {format_shape(outputs[0].shape)}"
                         "; reduce it to one number first (gc.mean or gc.sum)")
    if stabilized:  # gradients are derived from the stable form of the forward graph
        outputs = list(stabilize(Graph(tuple(outputs))).outputs)
    loss = outputs[0]
    fed = {x.id for x in inputs}
    params = [n for n in topological_order([loss]) if n.op.name == "param" and n.id not in fed]
    if not params:
        raise GraphcError("compile: an optimizer was given but the loss depends on no "
                          "parameter that the program holds (parameters listed in the "
                          "inputs are fed, not trained)")
    scale = optimizer.seed_scale if fold_lr else 1.0
    upstream = constant(scale, dtype=loss.dtype) if scale != 1.0 else None
    effects = optimizer.updates(params, grad(loss, params, upstream=upstream), seed_scale=scale)
    # an output that is a parameter is its value before the step's update, not after
    outputs = [make("copy", (o,)) if o.op.name in ("param", "state") else o for o in outputs]
    return Step(Graph(tuple(outputs), tuple(effects)), scale)


def with_gradients(outputs: Sequence[Node], *, stabilized: bool = True) -> list[Node]:
    """``outputs`` and, where the first is a scalar, its gradients with respect to every
    floating-point input and parameter it reads (derived from the stable form of the graph
    where ``stabilized``): what ``graphc emit`` shows of an example with no optimizer."""
    outputs = list(outputs)
    if stabilized:
        outputs = list(stabilize(Graph(tuple(outputs))).outputs)
    if outputs[0].shape != ():
        return outputs
    wrt = [n for n in topological_order(outputs[:1])
           if n.op.name in ("input", "param") and n.dtype.kind == "f"]
    return outputs + grad(outputs[0], wrt)


def lower(step: Step, inputs: Sequence[Node], pass_list: Sequence[str], header: str,
          options: CodeOptions, *, planned: bool) -> Program:
    """The program of a step: the pipeline's passes over its graph, then the backend, which
    plans buffers where ``planned``."""
    if step.lr_scale != 1.0:
        header += (f"\nThe learning rate {step.lr_scale!r} is folded into backpropagation's "
                   "seed: every gradient d_* holds lr times the gradient.")
    stages = run_pipeline(step.graph, pass_list)
    return Program(stages, inputs, header=header, options=options,
                   feed_plan=FeedPlan.of(stages[0].graph.nodes()), planned=planned)


def name_after_variables(outputs: Sequence[Node]) -> None:
    """Give each unnamed node the variable the user assigned it to (``h1 = relu(...)``),
    before passes reshape the graph and the lines it came from can no longer be told apart."""
    order = topological_order(outputs)
    users = consumers(order)
    for node in order:
        if node.name is None:
            node.name = display_name(node, users.get(node.id, []))


def _check_inputs(outputs: list[Node], inputs: list[Node]) -> None:
    """Outputs must be nodes, and inputs the input nodes (and any parameters to feed) that
    the outputs read, each name once."""
    if not outputs:
        raise GraphcError("compile: no outputs to compute")
    for i, o in enumerate(outputs):
        if not isinstance(o, Node):
            raise GraphcError(f"compile: outputs[{i}] is {o!r} ({type(o).__name__}), not a "
                              "graph node")
    for x in inputs:
        if not isinstance(x, Node) or x.op.name not in ("input", "param"):
            raise GraphcError(f"compile: {x!r} is not an input node (declare it with gc.input, "
                              "or list a parameter to feed it)")
    names = [leaf_name(x) for x in inputs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise GraphcError(f"compile: two inputs are named {dupes}; input names must differ")
    given = {x.id for x in inputs}
    for node in topological_order(outputs):
        if node.op.name == "input" and node.id not in given:
            where = f" (declared at {node.location})" if node.location else ""
            raise GraphcError(f"compile: the outputs depend on input {node.name!r}{where}, "
                              "which is not in the inputs list")
