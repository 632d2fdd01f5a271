"""Loss and accuracy curves of a training history, drawn with matplotlib (the ``plot``
extra: ``pip install 'graphc[plot]'``), which is imported only here and only when asked."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from graphc.errors import GraphcError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from graphc.train.history import History


def plot_history(history: History, path: str | os.PathLike | None = None) -> Figure:
    """Two panels: losses by step (every step's training loss, faint; each epoch's mean
    training loss and validation loss, at the step that ended the epoch) and validation
    accuracy by epoch. Written to ``path`` when given; the figure is returned either way.

    The figure is made without pyplot, so a notebook shows it once (as the value of the
    cell) and no window or global state is left behind."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise GraphcError("plotting needs matplotlib: pip install 'graphc[plot]'") from None
    if not history.epochs and not history.losses:
        raise GraphcError("plot: nothing to plot yet; call fit first")
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    losses, accuracy = fig.subplots(1, 2)
    if history.losses:
        losses.plot(history.steps, history.losses, color="#9db4d0", linewidth=0.8,
                    label="training loss (each step)")
    per_epoch = history.steps_per_epoch
    ends = [r.epoch * (per_epoch or 1) for r in history.epochs]
    losses.plot(ends, [r.loss for r in history.epochs], "o-", color="#2c5d9b",
                label="training loss (epoch mean)")
    val = [(x, r.val_loss) for x, r in zip(ends, history.epochs) if r.val_loss is not None]
    if val:
        losses.plot(*zip(*val), "s-", color="#cc3333", label="validation loss")
    losses.set(xlabel="step" if per_epoch else "epoch", ylabel="loss", title="Loss")
    losses.legend(frameon=False)
    acc = [(r.epoch, r.val_accuracy) for r in history.epochs if r.val_accuracy is not None]
    if acc:
        accuracy.plot(*zip(*acc), "s-", color="#22aa77", label="validation accuracy")
        accuracy.legend(frameon=False)
    else:
        accuracy.text(0.5, 0.5, "no validation accuracy\n(fit with val and scores)",
                      ha="center", va="center", transform=accuracy.transAxes, color="#777777")
    accuracy.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy")
    accuracy.xaxis.set_major_locator(MaxNLocator(integer=True))
    if path is not None:
        fig.savefig(os.fspath(path), dpi=150)
    _show_in_notebooks(Figure)
    return fig


def _show_in_notebooks(figure_class: type) -> None:
    """In a running IPython, have a Figure made without pyplot display as a PNG (what
    ``%matplotlib inline`` registers for pyplot's figures), so ``trainer.plot()`` as a
    cell's last line shows its curves, once."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    from IPython.core.pylabtools import print_figure

    png = shell.display_formatter.formatters["image/png"]
    png.for_type(figure_class, lambda fig: print_figure(fig, "png"))
