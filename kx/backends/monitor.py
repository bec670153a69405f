"""Per-epoch bookkeeping shared by every backend: history, log lines, early stopping, the best epoch."""

import json
import logging
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from kx.config.objective import Objective

log = logging.getLogger("kx")

EpochSink = Callable[[int, Dict[str, float]], None]
_ORDER = {"loss": 0, "acc": 1, "val_loss": 2, "val_acc": 3}


def format_metrics(metrics: Dict[str, float]) -> str:
    """``loss=0.4100 acc=0.8500 ...``: the stable, regex-friendly form of kx's metric lines."""
    return " ".join(f"{name}={value:.4f}" for name, value in metrics.items())


class EpochMonitor:
    """Receives each epoch's metrics from a backend's training loop.

    It records the history, prints the ``epoch=N ...`` line, forwards the metrics to the sinks
    (e.g. MLflow), tracks the best epoch by the ``objective`` and decides when early stopping ends
    training. Backends save weights whenever :meth:`end_epoch` reports an improvement and restore
    them at the end, so the exported model is the best epoch's and reports the best epoch's value.
    """

    def __init__(
        self,
        objective: Optional[Objective] = None,
        patience: Optional[int] = None,
        min_delta: float = 0.0,
        sinks: Sequence[EpochSink] = (),
        quiet: bool = False,
        epochs: Optional[int] = None,
    ) -> None:
        self.objective = objective or Objective()
        self.monitor = self.objective.metric
        self.patience = patience  # None: never stop early, never restore
        self.min_delta = min_delta
        self.sinks = list(sinks)
        # on the other hosts of a multi-host job: the first host's lines are the job's metrics, and a
        # tuner reading every host's log must find them once
        self.quiet = quiet
        self.planned_epochs = epochs  # for the time estimate after this process's first epoch
        self._trained_here = 0
        self.history: Dict[str, List[float]] = {}
        self.epoch_seconds: List[float] = []
        self.best_epoch = 0
        self.stop = False
        self.interrupted = (
            False  # a signal arrived (kx.stopping): stop after this batch, keep the epochs done
        )
        self._epoch_start = time.perf_counter()

    def save(self, path: Path) -> None:
        """Write the monitor's state (history, best epoch, epoch times) for a later resume."""
        state = {
            "history": self.history,
            "epoch_seconds": self.epoch_seconds,
            "best_epoch": self.best_epoch,
            "stop": self.stop,
        }
        path.write_text(json.dumps(state))

    def load(self, path: Path) -> None:
        state = json.loads(path.read_text())
        self.history, self.epoch_seconds = state["history"], state["epoch_seconds"]
        self.best_epoch, self.stop = state["best_epoch"], state["stop"]

    @property
    def epochs(self) -> int:
        return len(self.history.get(self.monitor, []))

    def best(self) -> Dict[str, float]:
        """The metrics of the best epoch (all of them, not only the monitored one)."""
        return {name: values[self.best_epoch - 1] for name, values in self.history.items()}

    def final(self) -> Dict[str, float]:
        return {name: values[-1] for name, values in self.history.items()}

    def begin_epoch(self) -> None:
        self._epoch_start = time.perf_counter()

    def end_epoch(self, epoch: int, metrics: Dict[str, float]) -> bool:
        """Record epoch ``epoch`` (1-based); return True when it is the best so far."""
        self.epoch_seconds.append(time.perf_counter() - self._epoch_start)
        ordered = sorted(metrics, key=lambda name: (_ORDER.get(name, len(_ORDER)), name))
        metrics = {name: float(metrics[name]) for name in ordered}
        if self.monitor not in metrics:
            raise KeyError(
                f"early stopping monitors {self.monitor!r}, but the backend reported only {sorted(metrics)}"
            )
        for name, value in metrics.items():
            self.history.setdefault(name, []).append(value)
        if self.quiet:
            log.info("epoch %d done (the first host logs the metrics)", epoch)
        else:
            log.info("epoch=%d %s", epoch, format_metrics(metrics))
        self._trained_here += 1
        if self._trained_here == 1 and not self.quiet:
            self._estimate(epoch)
        for sink in self.sinks:
            sink(epoch, metrics)
        best = self.history[self.monitor][self.best_epoch - 1] if self.best_epoch else None
        improved = self.objective.improves(metrics[self.monitor], best, self.min_delta)
        improved = improved or (metrics[self.monitor] == best and self._lower_loss(metrics))
        if improved:
            self.best_epoch = epoch
        elif self.patience is not None and epoch - self.best_epoch >= self.patience:
            self.stop = True
        return improved

    def _estimate(self, epoch: int) -> None:
        """After the first epoch this process trained: how long an epoch takes here, and the rest."""
        seconds = self.epoch_seconds[-1]
        left = (self.planned_epochs or epoch) - epoch
        if left > 0:
            log.info(
                "epoch %d took %.1f s here; the %d epochs left take about %.0f s more",
                epoch,
                seconds,
                left,
                left * seconds,
            )

    def _lower_loss(self, metrics: Dict[str, float]) -> bool:
        """Whether ``metrics`` has a lower loss than the best epoch: the tie-break on the objective.

        An objective that saturates (val_acc 1.0 on an easy set) would otherwise keep the first
        epoch that reached it, however much better later epochs fit.
        """
        name = next((n for n in ("val_loss", "loss") if n != self.monitor and n in metrics), None)
        return name is not None and metrics[name] < self.history[name][self.best_epoch - 1]

    def report_best(self) -> None:
        """Print the best epoch's metrics as the run's last metric lines (tuners keep the last match)."""
        if self.quiet or not self.epochs:
            return
        best = self.best()
        log.info(
            "best_epoch=%d %s",
            self.best_epoch,
            format_metrics({f"best_{name}": value for name, value in best.items() if name != self.monitor}),
        )
        log.info("best_%s=%.4f", self.monitor, best[self.monitor])
