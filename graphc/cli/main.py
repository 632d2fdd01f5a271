"""The ``graphc`` command: train an example, emit its generated code, render its graph."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from graphc.errors import GraphcError
from graphc.example import Example, load_example


def build_program(example: Example, optimize: int = 2, passes: Sequence[str] | None = None):
    """What ``emit`` shows: the training step of a trainable example; otherwise the outputs
    and the gradients of the first output with respect to every input and parameter."""
    from graphc.compiler import compile
    from graphc.ir.graph import topological_order
    from graphc.passes.autodiff import grad
    from graphc.passes.graph import Graph
    from graphc.passes.stabilize import stabilize

    if example.trainable:
        return compile(example.outputs, example.input_nodes, optimizer=example.optimizer,
                       optimize=optimize, passes=passes)
    outputs = list(example.outputs)
    if optimize and passes is None:
        outputs = list(stabilize(Graph(tuple(outputs))).outputs)  # derive from the stable form
    if outputs[0].shape == ():
        wrt = [n for n in topological_order(outputs[:1])
               if n.op.name in ("input", "param") and n.dtype.kind == "f"]
        outputs += grad(outputs[0], wrt)
    return compile(outputs, example.input_nodes, optimize=optimize, passes=passes)


def cmd_train(args: argparse.Namespace) -> int:
    """Train an example with checkpoints (``--resume`` continues a killed run exactly),
    printing each epoch's losses and the final test accuracy."""
    from graphc.train.trainer import Trainer

    example = load_example(args.example)
    if not example.trainable:
        raise GraphcError(f"{args.example}: the example declares no optimizer and dataset")
    data = example.dataset()
    train, val, test = data.split((0.6, 0.2, 0.2), seed=example.seed)
    trainer = Trainer(example.outputs[0], example.input_nodes, example.optimizer,
                      scores=example.scores)
    epochs = args.epochs or example.epochs
    name = os.path.splitext(os.path.basename(args.example))[0]
    directory = args.checkpoint_dir or os.path.join("checkpoints", name)
    print(f"training {os.path.basename(args.example)} on {data.name}: {len(train)} train, "
          f"{len(val)} validation, {len(test)} test examples, {epochs} epochs; "
          f"checkpoints in {directory}")
    trainer.fit(train, val, epochs=epochs, batch_size=example.batch_size,
                seed=example.seed if args.seed is None else args.seed,
                checkpoint_dir=directory, checkpoint_every=args.checkpoint_every,
                keep=args.keep, resume=args.resume)
    loss, acc = trainer.evaluate(test)
    print(f"test loss {loss:.4f}" + (f"  test accuracy {acc:.4f}" if acc is not None else ""))
    if args.save:
        trainer.save(args.save)
        print(f"parameters written to {args.save}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def cmd_emit(args: argparse.Namespace) -> int:
    from graphc.passes.pipeline import pass_names

    example = load_example(args.example)
    passes = None
    if args.stage:
        names = ("source",) + pass_names(args.optimize, None)
        if args.stage not in names:
            raise GraphcError(f"unknown stage {args.stage!r}; stages: {', '.join(names)}")
        passes = list(names[1:names.index(args.stage) + 1])
    program = build_program(example, args.optimize, passes)
    if args.output:
        with open(args.output, "w") as f:
            f.write(program.source)
        print(f"generated code written to {args.output}")
    else:
        sys.stdout.write(program.source)
    return 0


#: How many examples of a trainable example's dataset its figure is drawn for.
FIGURE_BATCH = 4


def figure_feeds(example: Example) -> dict:
    """The values a figure shows: the example's feeds, or else the first few examples of its
    dataset (features and labels), so that a network's figure carries values and gradients."""
    if example.feeds or not example.trainable:
        return dict(example.feeds)
    data = example.dataset()
    features, labels = example.input_nodes[:2]
    return {features: data.x[:FIGURE_BATCH].astype(features.dtype),
            labels: data.y[:FIGURE_BATCH]}


def cmd_render(args: argparse.Namespace) -> int:
    from graphc.render import render, render_steps

    example = load_example(args.example)
    feeds = figure_feeds(example)
    base, ext = os.path.splitext(args.output)
    fmt = ext.lstrip(".") or "svg"
    if args.steps:
        files = render_steps(example.outputs, feeds, base, format=fmt)
        print(f"{len(files)} frames written: {files[0]} ... {files[-1]}")
    else:
        render(example.outputs, feeds or None, path=args.output, stage=args.stage, format=fmt)
        print(f"graph written to {args.output}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphc", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an example and report test accuracy")
    t.add_argument("example")
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs in all, counting those a resumed run had done")
    t.add_argument("--save", help="write the trained parameters to this .npz file")
    t.add_argument("--resume", action="store_true",
                   help="continue from the newest valid checkpoint (without it, a run starts "
                   "afresh and deletes the checkpoints of an earlier one)")
    t.add_argument("--checkpoint-dir", metavar="DIR",
                   help="where checkpoints go (default: checkpoints/<example name>/)")
    t.add_argument("--checkpoint-every", type=_positive_int, metavar="N",
                   help="also checkpoint every N steps (default: at each epoch's end only)")
    t.add_argument("--keep", type=_positive_int, default=3, metavar="K",
                   help="keep the newest K checkpoints (default 3)")
    t.add_argument("--seed", type=int, metavar="S",
                   help="seed of the minibatch order (default: the example's seed)")
    t.set_defaults(run=cmd_train)
    e = sub.add_parser("emit", help="write the NumPy code graphc generates for an example")
    e.add_argument("example")
    e.add_argument("-o", "--output")
    e.add_argument("-O", "--optimize", type=int, default=2, choices=(0, 1, 2, 3),
                   help="0: one statement per node, 1: stabilize and cse, 2: fused, in-place "
                        "buffers (default), 3: also SGD updates folded into BLAS gemm calls")
    e.add_argument("--stage", help="print the code after this pass (source = no pass)")
    e.set_defaults(run=cmd_emit)
    r = sub.add_parser("render", help="draw an example's graph with values and gradients")
    r.add_argument("example")
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--stage", default="source", choices=("source", "autodiff", "optimized"))
    r.add_argument("--steps", action="store_true", help="one frame per backward step")
    r.set_defaults(run=cmd_render)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except GraphcError as err:
        print(f"graphc {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
