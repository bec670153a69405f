"""A worker's heartbeats for the trials it runs, from a thread, so that other workers can tell a
live trial from one whose worker is gone.

Optuna records heartbeats only inside ``optimize()``; kx asks and tells trials itself, so its
workers record them through the storage (``record_heartbeat``), as Optuna's docs ask of ask/tell.
"""

import logging
import threading
from typing import Any, Callable, Iterable

log = logging.getLogger("kx")


class Heartbeat:
    """Every ``interval`` seconds, record a heartbeat for each of ``trial_ids()`` in ``storage``."""

    def __init__(self, storage: Any, interval: float, trial_ids: Callable[[], Iterable[int]]) -> None:
        self.storage, self.interval, self.trial_ids = storage, interval, trial_ids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="kx-heartbeat", daemon=True)
        self._warned = False

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            for trial_id in list(self.trial_ids()):
                self.record(trial_id)

    def record(self, trial_id: int) -> None:
        """One heartbeat; a storage that cannot be reached is reported once and tried again later."""
        try:
            self.storage.record_heartbeat(trial_id)
        except Exception as err:  # noqa: BLE001 - the next beat may get through; the trial goes on
            if not self._warned:
                log.warning("cannot record the heartbeat of a trial (%s: %s)", type(err).__name__, err)
                self._warned = True
