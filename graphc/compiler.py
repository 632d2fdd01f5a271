"""``gc.compile``: from output nodes to a running program, through autodiff (when an
optimizer is given), the pass pipeline and the NumPy backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from graphc.backend.memory import plan_memory
from graphc.backend.printer import CodeOptions, Signature, header_for, print_module
from graphc.backend.program import Program, StageCode
from graphc.errors import GraphcError, ShapeError
from graphc.feeds import FeedPlan, leaf_name
from graphc.ir.graph import Graph, consumers, display_name, topological_order
from graphc.ir.node import Node
from graphc.ir.shapes import format_shape
from graphc.ops.leaves import constant
from graphc.ops.registry import make
from graphc.passes.autodiff import grad
from graphc.passes.pipeline import Stage, pass_names, run_pipeline
from graphc.passes.stabilize import stabilize


def compile(outputs: Sequence[Node] | Node, inputs: Sequence[Node] = (), *,  # noqa: A001
            optimizer=None, optimize: int = 2, passes: Sequence[str] | None = None,
            training: bool | None = None, check_numerics: bool = False,
            fold_lr: bool | None = None) -> Program:
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
    ``optimize`` (0, 1, 2, 3) picks how many passes run: 0 none, 1 stabilize and cse, 2 adds
    fuse, simplify and memory, 3 adds gemm (large SGD updates folded into their gradient
    products, one BLAS call each); ``passes=[...]`` names them exactly.
    ``training`` (default: whether an optimizer is given) switches on training-only ops such
    as dropout. ``check_numerics`` makes each call raise a NumericsError naming the first
    node of the graph as declared that produced NaN or Inf (its op, variable and line), at
    every optimize level, fused or not, with nothing updated (backend.numerics); off, it
    costs nothing.
    ``fold_lr`` (default: at optimize=2) seeds backpropagation with an SGD learning rate
    instead of 1, so every gradient comes out already scaled and each update is one
    subtraction (``W -= d_W``, where d_W holds lr times the gradient).
    """
    outputs = [outputs] if isinstance(outputs, Node) else list(outputs)
    inputs = list(inputs)
    _check_inputs(outputs, inputs)
    if optimizer is not None and outputs[0].shape != ():
        raise ShapeError(f"compile: with an optimizer, outputs[0] is the loss and must be a "
                         f"scalar, but {outputs[0]!r} has shape {format_shape(outputs[0].shape)}"
                         "; reduce it to one number first (gc.mean or gc.sum)")
    name_after_variables(outputs)
    pass_list = pass_names(optimize, passes)
    effects: list[Node] = []
    scale = 1.0
    if optimizer is not None and "stabilize" in pass_list:
        # gradients are derived from the stable form of the forward graph
        outputs = list(stabilize(Graph(tuple(outputs))).outputs)
    if optimizer is not None:
        loss = outputs[0]
        fed = {x.id for x in inputs}
        params = [n for n in topological_order([loss])
                  if n.op.name == "param" and n.id not in fed]
        if not params:
            raise GraphcError("compile: an optimizer was given but the loss depends on no "
                              "parameter that the program holds (parameters listed in the "
                              "inputs are fed, not trained)")
        fold = optimize >= 2 and passes is None if fold_lr is None else fold_lr
        scale = optimizer.seed_scale if fold else 1.0
        seed = constant(scale, dtype=loss.dtype) if scale != 1.0 else None
        effects = optimizer.updates(params, grad(loss, params, upstream=seed), seed_scale=scale)
        # an output that is a parameter is its value before the step's update, not after
        outputs = [make("copy", (o,)) if o.op.name in ("param", "state") else o
                   for o in outputs]
    stages = run_pipeline(Graph(tuple(outputs), tuple(effects)), pass_list)
    final = stages[-1].graph
    schedule = _schedule(final)
    feed_plan = FeedPlan.of(stages[0].graph.nodes())
    signature = _signature(inputs, schedule, feed_plan)
    header = header_for(outputs, optimize if passes is None else -1)
    if scale != 1.0:
        header += (f"\nThe learning rate {scale!r} is folded into backpropagation's seed: every "
                   "gradient d_* holds lr times the gradient.")
    options = CodeOptions(training=optimizer is not None if training is None else training,
                          check_numerics=check_numerics)
    plan = plan_memory(schedule, final.outputs) if "memory" in pass_list else None
    source, names = print_module(schedule, final.outputs, signature, header, options, plan)

    def standalone(suffix: str) -> str:
        opts = replace(options, standalone_params=suffix)
        return print_module(schedule, final.outputs, signature, header, opts, plan)[0]

    def stage_code(stage: Stage, planned: bool) -> StageCode:
        """The module as printed from one stage's graph (``Program.report``, and the
        reference program of check_numerics)."""
        order = _schedule(stage.graph)
        stage_plan = plan_memory(order, stage.graph.outputs) if planned else None
        stage_signature = _signature(inputs, order, feed_plan)
        code, stage_names = print_module(order, stage.graph.outputs, stage_signature, header,
                                         options, stage_plan)
        return StageCode(stage.name, len(stage.graph.nodes()), code, order, stage_plan,
                         stage_signature, stage_names)

    return Program(source, signature, final.outputs, stages, names, standalone,
                   feed_plan=feed_plan, stage_code=stage_code, check_numerics=check_numerics)


def name_after_variables(outputs: Sequence[Node]) -> None:
    """Give each unnamed node the variable the user assigned it to (``h1 = relu(...)``),
    before passes reshape the graph and the lines it came from can no longer be told apart."""
    order = topological_order(outputs)
    users = consumers(order)
    for node in order:
        if node.name is None:
            node.name = display_name(node, users.get(node.id, []))


def _signature(inputs: list[Node], schedule: Sequence[Node], plan: FeedPlan) -> Signature:
    """The generated function's arguments: the inputs, then what the program owns
    (parameters not fed as inputs, optimizer state, array constants); and the class count
    of label inputs."""
    fed = {x.id for x in inputs}
    owned = [n for n in schedule if n.id not in fed and (n.op.name in ("param", "state")
             or (n.op.name == "constant" and n.shape != ()))]
    return Signature(inputs, owned, plan.classes)


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


def _schedule(graph: Graph) -> list[Node]:
    """Statement order: forward and backward first, then all in-place updates, so that no
    update overwrites a parameter that a gradient still reads."""
    order = graph.nodes()
    later = [n for n in order if n.role == "update"]
    first = [n for n in order if n.role != "update"]
    update_ids = {n.id for n in later}
    for n in first:
        if any(x.id in update_ids and x.op.name != "state" for x in n.inputs):
            raise GraphcError(f"compile: {n!r} reads a value updated in this step")
    return first + later
