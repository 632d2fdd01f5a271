"""The ``graphc`` command: train an example, emit its generated code, render its graph.

It keeps the manners of pip, pytest and git: a mistake of the user's (a typo in an example,
a missing file or extra, a bad option) is one message on stderr naming the file and line,
and exit status 2; ``--debug`` adds the traceback; an interrupt exits with 130; anything
else is a bug in graphc and shows its traceback. Messages go through :mod:`logging` (the
``graphc`` logger): INFO to stdout, warnings to stderr as ``warning: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence

from graphc.errors import GraphcError
from graphc.example import (
    Example,
    describe_exception,
    find_example,
    load_example,
    shipped_examples,
)
from graphc.passes.pipeline import LEVELS, MEMORY_LEVEL
from graphc.train.console import LOGGER

log = logging.getLogger("graphc.cli")

#: Exit status of a user error (as argparse's usage errors), and of an interrupt (git's).
USER_ERROR = 2
INTERRUPTED = 130


def build_program(example: Example, optimize: int = 2, passes: Sequence[str] | None = None,
                  memory: bool | None = None):
    """What ``emit`` shows: the training step of a trainable example; otherwise the outputs
    and the gradients of the first output with respect to every input and parameter."""
    from graphc.compiler import compile, with_gradients

    if example.trainable:
        return compile(example.outputs, example.input_nodes, optimizer=example.optimizer,
                       optimize=optimize, passes=passes, memory=memory)
    outputs = with_gradients(example.outputs, stabilized=bool(optimize) and passes is None)
    return compile(outputs, example.input_nodes, optimize=optimize, passes=passes,
                   memory=memory)


def cmd_train(args: argparse.Namespace) -> int:
    """Train an example with checkpoints (``--resume`` continues a killed run exactly),
    logging each epoch's losses and the final test accuracy; ``--plot`` draws the curves."""
    from graphc.train.trainer import Trainer

    example = _load(args)
    if not example.trainable:
        raise GraphcError(f"{args.example}: the example declares no optimizer and dataset, so "
                          "there is nothing to train (emit and render still work)")
    data = example.load_dataset()
    train, val, test = data.split((0.6, 0.2, 0.2), seed=example.seed)
    optimizer = example.optimizer if args.lr is None else with_lr(example.optimizer, args.lr)
    trainer = Trainer(example.outputs[0], example.input_nodes, optimizer,
                      scores=example.scores)
    epochs = args.epochs or example.epochs
    batch_size = args.batch_size or example.batch_size
    name = example_name(args.example_path)
    directory = args.checkpoint_dir or os.path.join("checkpoints", name)
    log.info(f"training {name} on {data.name}: {len(train)} train, {len(val)} validation, "
             f"{len(test)} test examples, {epochs} epochs of minibatches of {batch_size}, "
             f"{optimizer!r}; checkpoints in {directory}")
    trainer.fit(train, val, epochs=epochs, batch_size=batch_size,
                seed=example.seed if args.seed is None else args.seed,
                progress=not args.quiet, checkpoint_dir=directory,
                checkpoint_every=args.checkpoint_every, keep=args.keep, resume=args.resume)
    loss, acc = trainer.evaluate(test)
    log.info(f"test loss {loss:.4f}" + (f"  test accuracy {acc:.4f}" if acc is not None else ""))
    if args.save:
        trainer.save(args.save)
        log.info(f"parameters written to {args.save}")
    if args.plot:
        trainer.plot(args.plot)
        log.info(f"loss and accuracy curves drawn to {args.plot}")
    return 0


def with_lr(optimizer, lr: float):
    """A copy of ``optimizer`` with the learning rate ``lr`` and its other settings."""
    settings = {name: getattr(optimizer, name) for name in optimizer.fields}
    return type(optimizer)(**{**settings, "lr": lr})


def example_name(path: str) -> str:
    """An example's name, as ``graphc examples`` lists it: its file name without ``.py``."""
    return os.path.splitext(os.path.basename(path))[0]


def _load(args: argparse.Namespace) -> Example:
    """The example the command names, remembering its file for error messages."""
    args.example_path = find_example(args.example)
    return load_example(args.example_path)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


#: The stages ``emit --stage`` shows: the code before any pass, then after each pass, in the
#: order of the fullest pipeline (``-O 3``), then "memory": the level's code with its buffers
#: planned (a backend step, not a pass).
STAGES = ("source", *LEVELS[3], "memory")


def stage_passes(stage: str, optimize: int | None) -> tuple[int, tuple[str, ...], bool]:
    """The optimize level, the passes up to ``stage`` and whether buffers are planned: in
    the pipeline of ``optimize``, or, where no level was asked for, of the first level from
    the default (2) up that has that stage (``gemm`` runs at 3 only). A pass's stage is
    shown unplanned, "memory" as the level's code with its buffers. GraphcError where the
    level asked for lacks the stage."""
    if stage == "source":
        return (2 if optimize is None else optimize), (), False
    levels = [optimize] if optimize is not None else [2, 3, 1]
    for level in levels:
        if _has_stage(level, stage):
            names = LEVELS[level]
            if stage == "memory":
                return level, names, True
            return level, names[:names.index(stage) + 1], False
    runs_at = " and ".join(str(level) for level in LEVELS if _has_stage(level, stage))
    if stage == "memory":
        raise GraphcError(f"buffers are not planned at -O {optimize}; they are at -O {runs_at}")
    raise GraphcError(f"the {stage} pass does not run at -O {optimize}; it runs at -O {runs_at}")


def _has_stage(level: int, stage: str) -> bool:
    """Whether level ``level`` runs the pass ``stage`` or, for "memory", plans buffers."""
    return level >= MEMORY_LEVEL if stage == "memory" else stage in LEVELS[level]


def cmd_emit(args: argparse.Namespace) -> int:
    """Write the generated code, or with ``--stage`` the code after one pass (or, for
    "memory", the level's code with its buffers), its header naming that stage."""
    example = _load(args)
    if args.stage:
        level, passes, memory = stage_passes(args.stage, args.optimize)
        program = build_program(example, level, list(passes), memory)
        done = ", ".join((*passes, "memory") if memory else passes) or "no pass"
        source = program.source.replace("(optimize=-1)", f"(stage {args.stage} of -O {level}: "
                                        f"{done})", 1)
    else:
        source = build_program(example, 2 if args.optimize is None else args.optimize).source
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(source)
        log.info(f"generated code written to {args.output}")
    else:
        sys.stdout.write(source)
    return 0


def cmd_examples(args: argparse.Namespace) -> int:
    """List the examples that ship with graphc, each with the first line of its docstring."""
    import ast
    import textwrap

    shipped = shipped_examples()
    width = max(map(len, shipped), default=0)
    for name, path in shipped.items():
        with open(path, encoding="utf-8") as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
        first = " ".join(doc.split("\n\n")[0].split()).split(". ")[0].rstrip(".")
        sys.stdout.write(f"{name.ljust(width)}  {textwrap.shorten(first, 96 - width)}\n")
    if shipped:
        sys.stdout.write(f"\n{len(shipped)} examples in {os.path.dirname(path)}; run one by "
                         f"name: graphc train mlp_digits\n")
    return 0


#: How many examples of a trainable example's dataset ``render --values`` draws by default.
FIGURE_BATCH = 4


def figure_feeds(example: Example, count: int = FIGURE_BATCH) -> dict:
    """The values a figure shows: the example's feeds, or else the first ``count`` examples
    of its dataset (features and labels), so that a network's figure carries values and
    gradients (``feeds_title`` says which)."""
    if example.feeds or not example.trainable:
        return dict(example.feeds)
    data = example.load_dataset()
    features, labels = example.input_nodes[:2]
    return {features: data.x[:count].astype(features.dtype), labels: data.y[:count]}


def feeds_title(example: Example, feeds: dict) -> str | None:
    """Where the values of ``figure_feeds`` come from, for the figure's title; None for an
    example's own feeds."""
    if example.feeds or not feeds:
        return None
    labels = feeds[example.input_nodes[1]]
    return (f"values and gradients for {example.load_dataset().name} examples 0-{len(labels) - 1} "
            f"(labels {', '.join(str(int(y)) for y in labels)})")


def is_network(example: Example) -> bool:
    """A network (it has parameters: the digits MLP and CNN) rather than a lecture graph of
    given numbers: drawn collapsed, in a slide's shape, and without values unless asked."""
    from graphc.ir.graph import topological_order

    return any(n.op.name == "param" for n in topological_order(example.outputs))


def cmd_render(args: argparse.Namespace) -> int:
    """Draw an example's graph: a lecture graph left to right with its numbers, a network
    collapsed by layers in a slide's shape (within 3:1), with values only with ``--values``."""
    from graphc.render import render, render_steps
    from graphc.render.dot import figure_format

    example = _load(args)
    network = is_network(example)
    fmt = figure_format(args.output, None)  # refuse -o f.xyz before any work
    wants_values = not args.no_values and (args.values is not None or not network)
    feeds = figure_feeds(example, args.values or FIGURE_BATCH) if wants_values else {}
    title = feeds_title(example, feeds)
    numbers = {"digits": args.digits, "decimals": args.decimals}
    if args.steps and not feeds:
        raise GraphcError(f"{args.example}: --steps needs values to step through; "
                          + ("drop --no-values" if args.no_values else "add --values"))
    if args.steps and fmt == "pdf":
        from graphc.render.deck import render_deck

        deck = render_deck(example.outputs, feeds, args.output, **numbers)
        log.info(f"backpropagation deck written to {deck}")
    elif args.steps:
        files = render_steps(example.outputs, feeds, args.output, **numbers)
        log.info(f"{len(files)} frames written: {files[0]} ... {files[-1]}")
    else:
        collapse = args.collapse or ("layers" if network else "none")
        rankdir = args.rankdir or ("auto" if network else "LR")
        render(example.outputs, feeds or None, path=args.output, stage=args.stage,
               rankdir=rankdir, collapse=None if collapse == "none" else collapse,
               title=title, **numbers)
        log.info(f"graph written to {args.output}" + (f" ({title})" if title else ""))
    return 0


def _decimals(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 12:
        raise argparse.ArgumentTypeError(f"must be a number of decimals from 0 to 12, got {value}")
    return value


def cmd_view(args: argparse.Namespace) -> int:
    """Write the backprop viewer of an example: one self-contained HTML page."""
    from graphc.render.viewer import view

    example = _load(args)
    title = os.path.splitext(os.path.basename(args.example_path))[0]
    view(example.outputs, figure_feeds(example), path=args.output, title=title)
    log.info(f"viewer written to {args.output}: open it in a browser (arrow keys step, F presents)")
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show debug messages, and the traceback of an error")
    p = argparse.ArgumentParser(prog="graphc", description=__doc__.split("\n\n")[0],
                                parents=[common])
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    example_help = "an example file, or the name of one that ships with graphc (graphc examples)"
    t = sub.add_parser("train", parents=[common], help="train an example and report test accuracy")
    t.add_argument("example", help=example_help)
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs in all, counting those a resumed run had done")
    t.add_argument("--lr", type=_positive_float, metavar="RATE",
                   help="learning rate (default: the example's optimizer's)")
    t.add_argument("--batch-size", type=_positive_int, metavar="N",
                   help="minibatch size (default: the example's)")
    t.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no epoch lines: only warnings and errors")
    t.add_argument("--plot", metavar="FILE",
                   help="draw the loss and accuracy curves into FILE (.png, .pdf, .svg; "
                        "needs matplotlib: pip install 'graphc[plot]')")
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
    e = sub.add_parser("emit", parents=[common],
                       help="write the NumPy code graphc generates for an example")
    e.add_argument("example", help=example_help)
    e.add_argument("-o", "--output", help="write the code to this file (default: stdout)")
    e.add_argument("-O", "--optimize", type=int, default=None, choices=(0, 1, 2, 3),
                   help="0: one statement per node, 1: stabilize and cse, 2: fused, in-place "
                        "buffers (default), 3: also SGD updates folded into BLAS gemm calls")
    e.add_argument("--stage", choices=STAGES, metavar="STAGE",
                   help=f"print the code after this pass, one of: {', '.join(STAGES)} "
                        "(source: before any pass; memory: after all, with buffers planned; "
                        "gemm implies -O 3)")
    e.set_defaults(run=cmd_emit)
    r = sub.add_parser("render", parents=[common],
                       help="draw an example's graph with values and gradients")
    r.add_argument("example", help=example_help)
    r.add_argument("-o", "--output", required=True,
                   help="the figure; its extension is the format (.svg, .png, .pdf, ...)")
    r.add_argument("--stage", default="source", choices=("source", "autodiff", "optimized"))
    r.add_argument("--steps", action="store_true",
                   help="one frame per backward step (-o deck.pdf: one PDF, a page per step)")
    r.add_argument("--collapse", choices=("layers", "none"),
                   help="draw each layer as one box (default: layers for a network, none for "
                        "a lecture graph)")
    r.add_argument("--rankdir", choices=("LR", "TB", "auto"),
                   help="left to right, top to bottom, or auto: left to right where that stays "
                        "within 3:1, else top to bottom (default: auto for a network, LR for a "
                        "lecture graph)")
    values = r.add_mutually_exclusive_group()
    values.add_argument("--values", type=_positive_int, nargs="?", const=FIGURE_BATCH,
                        metavar="N", help="a network's figure with the values and gradients of "
                        f"its first N dataset examples (default {FIGURE_BATCH})")
    values.add_argument("--no-values", action="store_true",
                        help="the graph alone, without numbers")
    r.add_argument("--decimals", type=_decimals, default=2, metavar="D",
                   help="decimals of the numbers (default 2, as on the slides: 1.37, -0.20)")
    r.add_argument("--digits", type=_positive_int, metavar="S",
                   help="round numbers to S significant digits instead of to decimals")
    r.set_defaults(run=cmd_render)
    v = sub.add_parser("view", parents=[common],
                       help="write the backprop viewer of an example: one "
                       "offline HTML page stepping through forward and backward")
    v.add_argument("example", help=example_help)
    v.add_argument("-o", "--output", required=True, help="the .html file to write")
    v.set_defaults(run=cmd_view)
    x = sub.add_parser("examples", parents=[common], help="list the examples that ship with "
                       "graphc (each runs by name: graphc train mlp_digits)")
    x.set_defaults(run=cmd_examples)
    return p


def version() -> str:
    from graphc import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit status (0, 2 for a user error, 130 interrupted)."""
    args = parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    with _console(debug, getattr(args, "quiet", False)):
        try:
            return args.run(args)
        except KeyboardInterrupt:
            log.error(f"graphc {args.command}: interrupted")
            return INTERRUPTED
        except Exception as err:
            message = user_error(err, getattr(args, "example_path", None))
            if message is None:
                raise  # a bug in graphc: its traceback is what a report needs
            if debug:
                traceback.print_exception(err, file=sys.stderr)
            log.error(f"graphc {args.command}: {message}")
            return USER_ERROR


def user_error(err: Exception, example_path: str | None) -> str | None:
    """The message of an error that is the user's to fix, None for a bug in graphc: a
    graphc error; a missing optional dependency (whose message says what to install); a
    file that cannot be read or written; any exception raised in the example's own code
    (named by file and line)."""
    if example_path is not None and not isinstance(err, GraphcError) and any(
            os.path.abspath(f.filename) == os.path.abspath(example_path)
            for f in traceback.extract_tb(err.__traceback__)):
        return describe_exception(err, example_path)
    if isinstance(err, GraphcError):
        return str(err)
    if isinstance(err, ImportError) and "pip install" in str(err):
        return str(err)  # an optional dependency missing, with the extra that brings it
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or err}"
    return None


@contextlib.contextmanager
def _console(debug: bool, quiet: bool) -> Iterator[None]:
    """For one command: graphc's log level (DEBUG with ``--debug``, WARNING with
    ``--quiet``), and Python warnings as one ``warning: ...`` line each instead of a file,
    line and source excerpt."""
    level = LOGGER.level
    LOGGER.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    with warnings.catch_warnings():
        warnings.showwarning = _log_warning
        try:
            yield
        finally:
            LOGGER.setLevel(level)


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    log.warning(str(message))


if __name__ == "__main__":
    sys.exit(main())
