"""Training: the optimizers (compiled into the step), the Trainer (minibatches, validation,
checkpoints, history and plots) and ``reinit`` for fresh parameters."""

from graphc.train.optimizers import SGD, Adam, AdamW, Momentum, Optimizer, RMSProp
from graphc.train.trainer import EpochResult, History, Trainer, TrainerWarning, reinit

__all__ = ["SGD", "Adam", "AdamW", "EpochResult", "History", "Momentum", "Optimizer", "RMSProp",
           "Trainer", "TrainerWarning", "reinit"]
