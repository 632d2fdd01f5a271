"""What training records: each epoch's result and each step's loss (``Trainer.history``,
drawn by graphc.train.plot)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EpochResult:
    """One epoch: its number (from 1), mean training loss, validation loss and accuracy
    (None without validation data or ``scores``) and the seconds it took."""

    epoch: int
    loss: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float


@dataclass
class History:
    """What a Trainer's runs recorded: every epoch's result (those of a resumed run's earlier
    epochs included, from its checkpoint), and the training loss of every step this Trainer
    ran, by global step number (from 1)."""

    epochs: list[EpochResult] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    steps_per_epoch: int = 0  # minibatches in an epoch of the last fit (0 before any)
