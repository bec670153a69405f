"""Enumerations shared by the schemas: values the config accepts for a key, printed plainly."""

from enum import Enum


class Choice(str, Enum):
    """An enum whose members print as their plain value (``sgd``, not ``Optimizer.sgd``)."""

    def __str__(self) -> str:
        return str(self.value)


class Metric(Choice):
    """A metric train.py reports per epoch."""

    val_acc = "val_acc"
    val_loss = "val_loss"
    acc = "acc"
    loss = "loss"


class Direction(Choice):
    maximize = "maximize"
    minimize = "minimize"
