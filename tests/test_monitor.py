"""Early stopping, the best epoch and the log lines a tuner scrapes."""

import logging
import re

from kx.backends import EpochMonitor
from kx.config import Objective


def feed(monitor: EpochMonitor, val_accs):
    improved = []
    for epoch, acc in enumerate(val_accs, start=1):
        improved.append(monitor.end_epoch(epoch, {"val_acc": acc, "loss": 1.0 / epoch, "acc": acc}))
        if monitor.stop:
            break
    return improved


def test_stops_after_patience_epochs_without_improvement_and_keeps_the_best():
    monitor = EpochMonitor(Objective("val_acc", "maximize"), patience=2)
    improved = feed(monitor, [0.5, 0.7, 0.6, 0.65, 0.9])
    assert improved == [True, True, False, False]
    assert monitor.stop and monitor.epochs == 4 and monitor.best_epoch == 2
    assert monitor.best()["val_acc"] == 0.7 and monitor.final()["val_acc"] == 0.65


def test_loss_is_minimised_and_min_delta_counts():
    monitor = EpochMonitor(Objective("loss", "minimize"), patience=0, min_delta=0.1)
    for epoch, loss in enumerate([1.0, 0.95], start=1):
        monitor.end_epoch(epoch, {"loss": loss})
    assert monitor.best_epoch == 1 and monitor.stop


def test_without_early_stopping_all_epochs_run():
    monitor = EpochMonitor(Objective("val_acc", "maximize"), patience=None)
    feed(monitor, [0.9, 0.1, 0.1, 0.1])
    assert not monitor.stop and monitor.best_epoch == 1


def test_log_lines_are_regex_friendly_and_the_best_value_comes_last(caplog):
    monitor = EpochMonitor(Objective("val_acc", "maximize"), patience=5)
    with caplog.at_level(logging.INFO, logger="kx"):
        feed(monitor, [0.81234, 0.9126, 0.9])
        monitor.report_best()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "epoch=1 loss=1.0000 acc=0.8123 val_acc=0.8123"
    matches = [m for line in lines for m in re.findall(r"val_acc=([0-9.]+)", line)]
    assert matches[-1] == "0.9126"  # a tuner keeps the last match: the best epoch's value
    assert lines[-1] == "best_val_acc=0.9126"


def test_a_tie_on_the_objective_goes_to_the_lower_val_loss():
    monitor = EpochMonitor(Objective("val_acc", "maximize"), patience=None)
    losses = [0.63, 0.2, 0.029, 0.05]
    improved = [
        monitor.end_epoch(epoch, {"val_acc": 1.0, "val_loss": loss, "loss": 0.5})
        for epoch, loss in enumerate(losses, start=1)
    ]
    assert improved == [True, True, True, False]
    assert monitor.best_epoch == 3 and monitor.best()["val_loss"] == 0.029


def test_a_lower_loss_never_outranks_a_better_objective():
    monitor = EpochMonitor(Objective("val_acc", "maximize"), patience=None)
    monitor.end_epoch(1, {"val_acc": 0.9, "val_loss": 0.5})
    assert not monitor.end_epoch(2, {"val_acc": 0.8, "val_loss": 0.1})
    assert monitor.best_epoch == 1


def test_after_its_first_epoch_a_run_says_how_long_the_rest_takes(caplog):
    monitor = EpochMonitor(Objective("val_acc", "maximize"), epochs=5)
    with caplog.at_level(logging.INFO, logger="kx"):
        feed(monitor, [0.5, 0.6])
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and lines[0].startswith("epoch=1 ") and lines[2].startswith("epoch=2 ")
    assert re.fullmatch(r"epoch 1 took [0-9.]+ s here; the 4 epochs left take about [0-9]+ s more", lines[1])
