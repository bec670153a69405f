"""The epoch bookkeeping every backend shares (kx.backends.base): sums to metrics, the epochs a loop
runs, the best epoch's weights kept and each epoch checkpointed."""

import numpy as np

from kx.backends import EpochMonitor
from kx.backends.base import Backend, EpochSums, epochs_left
from kx.backends.checkpoint import Checkpoint
from kx.config import Objective


def test_metrics_are_the_means_of_sums_added_up_across_hosts():
    hosts = [EpochSums(6.0, 3, 4, 2.0, 1, 2), EpochSums(2.0, 1, 4, 1.0, 2, 2)]
    total = EpochSums(*np.sum([list(h) for h in hosts], axis=0))  # as the hosts add them up, as one array
    assert total.metrics() == {"loss": 1.0, "acc": 0.5, "val_loss": 0.75, "val_acc": 0.75}


def test_a_resumed_loop_starts_after_the_recorded_epochs_and_ends_when_early_stopping_says():
    monitor = EpochMonitor(Objective("val_acc", "maximize"), patience=1)
    monitor.end_epoch(1, {"val_acc": 0.5, "loss": 1.0})  # as a restored checkpoint leaves it
    ran = []
    for epoch in epochs_left(monitor, 9):
        ran.append(epoch)
        monitor.end_epoch(epoch, {"val_acc": 0.4, "loss": 1.0})  # no better: patience 1 stops it
    assert ran == [2]
    assert list(epochs_left(EpochMonitor(), 0)) == []


class _Weights:
    """A backend's part in :meth:`Backend.end_epoch`, recorded."""

    def __init__(self) -> None:
        self.kept, self.weights = [], 0

    def keep_best(self) -> None:
        self.kept.append(self.weights)


def test_end_epoch_keeps_the_best_epochs_weights_and_checkpoints_every_epoch(monkeypatch):
    backend, saved = _Weights(), []
    monkeypatch.setattr(Checkpoint, "save", lambda self, b, m: saved.append(m.epochs))
    monitor = EpochMonitor(Objective("val_acc", "maximize"))
    for epoch, acc in enumerate([0.5, 0.7, 0.6], start=1):
        backend.weights = epoch
        Backend.end_epoch(backend, epoch, {"val_acc": acc, "loss": 1.0}, monitor, Checkpoint(None))
    assert backend.kept == [1, 2] and saved == [1, 2, 3]
