"""Stopping a run on Ctrl-C (SIGINT) or SIGTERM: at once, with one line, keeping what the completed
epochs earned.

While a backend trains, the first signal asks its loop to stop after the current batch (no
validation pass of the partial epoch); a second Ctrl-C stops at once. The pipeline then writes
the completed epochs' metrics, curves and best model, and ends the MLflow run KILLED.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import contextlib
import logging
import signal
from typing import Any, Dict, Iterator, Optional

from kx.backends.checkpoint import Checkpoint
from kx.backends.monitor import EpochMonitor
from kx.errors import KxError

log = logging.getLogger("kx")
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 2}  # Ctrl-C: the shell's 128+2; SIGTERM: a stopped job's code


class RunStopped(KxError):
    """The run was stopped on purpose before its end (a signal, a sweep's pruner): its MLflow run
    ends KILLED, not FAILED."""


class TrainingInterrupted(RunStopped):
    """A signal stopped training; the completed epochs' results are kept."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Stopped(KeyboardInterrupt):
    """SIGTERM outside the training loop (start-up, export, logging): raised wherever the process
    is, so that the run ends KILLED at once instead of dying with its MLflow run RUNNING."""


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Stopped` (:func:`stop_on_signals` replaces
    this while training, to stop after the batch)."""

    def handler(signum: int, frame: Any) -> None:
        raise Stopped

    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if previous is not signal.SIG_IGN:
            signal.signal(signal.SIGTERM, previous)


class Signals:
    """The signal that stopped training, if any (``"SIGINT"`` or ``"SIGTERM"``)."""

    received: Optional[str] = None


@contextlib.contextmanager
def stop_on_signals(monitor: EpochMonitor) -> Iterator[Signals]:
    """While training, SIGINT and SIGTERM set ``monitor.interrupted`` (the loop stops after the
    batch); a second SIGINT raises ``KeyboardInterrupt``. A signal the caller ignores stays ignored
    (e.g. SIGINT in a shell's background job)."""
    signals = Signals()

    def handler(signum: int, frame: Any) -> None:
        if monitor.interrupted and signum == signal.SIGINT:
            raise KeyboardInterrupt
        signals.received = signals.received or signal.Signals(signum).name
        monitor.interrupted = True  # no logging here: the signal may land inside a log handler's write

    previous: Dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield signals
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if signals.received:
            log.warning(
                "%s received: stopped after the batch; the %d completed epochs are kept",
                signals.received,
                monitor.epochs,
            )


def interrupted(
    monitor: EpochMonitor, checkpoint: Checkpoint, signals: Signals, kept: str
) -> TrainingInterrupted:
    """The one line for a stopped run: the signal, the epochs kept, where, and how to resume.
    (On a multi-host job a host stopped by another host's SIGTERM reports SIGTERM.)"""
    name = signals.received or "SIGTERM"
    resume = (
        f"rerun with train.checkpoint_dir={checkpoint.folder} to resume"
        if checkpoint.folder
        else "set train.checkpoint_dir to make runs resumable"
    )
    return TrainingInterrupted(
        f"Training stopped by {name} after epoch {monitor.epochs}; {kept}; {resume}.", EXIT_CODES[name]
    )
