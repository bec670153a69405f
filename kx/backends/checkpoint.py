"""Per-epoch checkpoints: the last completed epoch's full training state, for resuming.

Managed spot training and restarted jobs lose at most the epoch in progress: each completed
epoch replaces ``<folder>/last/`` atomically (written beside it, then renamed), and a new run in
the same folder picks up from there.
"""

import logging
import shutil
from pathlib import Path
from typing import Optional

from kx.backends.monitor import EpochMonitor

log = logging.getLogger("kx")


class Checkpoint:
    """The folder that holds ``last/``; a ``None`` folder turns checkpointing off."""

    def __init__(self, folder: Optional[str]) -> None:
        self.folder = Path(folder) if folder else None

    @property
    def last(self) -> Optional[Path]:
        return self.folder / "last" if self.folder else None

    def exists(self) -> bool:
        return self.last is not None and (self.last / "monitor.json").is_file()

    def save(self, backend: "object", monitor: EpochMonitor) -> None:
        """Write ``backend.save_state`` and the monitor's state for the epoch just completed."""
        if self.folder is None:
            return
        staging, previous = self.folder / "last.partial", self.folder / "last.previous"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        backend.save_state(staging)  # type: ignore[attr-defined]
        monitor.save(staging / "monitor.json")
        shutil.rmtree(previous, ignore_errors=True)
        if self.last.exists():
            self.last.rename(previous)
        staging.rename(self.last)
        shutil.rmtree(previous, ignore_errors=True)

    def restore(self, backend: "object", monitor: EpochMonitor) -> int:
        """Load the last checkpoint into ``backend`` and ``monitor``; return the epochs it completed."""
        if not self.exists():
            return 0
        backend.load_state(self.last)  # type: ignore[attr-defined]
        monitor.load(self.last / "monitor.json")
        log.info("resuming from the checkpoint in %s after epoch %d", self.last, monitor.epochs)
        return monitor.epochs
