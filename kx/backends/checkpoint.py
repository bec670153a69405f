"""Per-epoch checkpoints: the last completed epoch's full training state, for resuming.

Managed spot training and restarted jobs lose at most the epoch in progress: each completed
epoch replaces ``<folder>/last/`` (written beside it, then renamed), and a new run in the same
folder picks up from there.
"""

import json
import logging
import shutil
from pathlib import Path
from typing import Optional

from kx.backends.monitor import EpochMonitor
from kx.errors import KxError, one_line

log = logging.getLogger("kx")


def complete(folder: Path) -> bool:
    """A checkpoint folder is complete once its ``monitor.json``, written last, reads back whole."""
    try:
        json.loads((folder / "monitor.json").read_text())
    except (OSError, ValueError):
        return False
    return True


class Checkpoint:
    """The folder that holds ``last/``; a ``None`` folder turns checkpointing off.

    A save writes ``last.partial/``, renames ``last/`` to ``last.previous/`` and ``last.partial/`` to
    ``last/``, then removes ``last.previous/``. Stopped at any step, :meth:`recover` finds the newest
    complete checkpoint among the three, and no step removes a folder before a newer complete one exists.
    """

    def __init__(self, folder: Optional[str]) -> None:
        self.folder = Path(folder) if folder else None

    @property
    def last(self) -> Optional[Path]:
        return self.folder / "last" if self.folder else None

    def exists(self) -> bool:
        self.recover()
        return self.last is not None and complete(self.last)

    def recover(self) -> None:
        """Leave ``last/`` as the newest complete checkpoint, after a save that was stopped midway."""
        if self.folder is None:
            return
        staging, previous = self.folder / "last.partial", self.folder / "last.previous"
        if not complete(self.last):
            for candidate in (staging, previous):  # staging is complete only after last was moved away
                if complete(candidate):
                    shutil.rmtree(self.last, ignore_errors=True)
                    candidate.rename(self.last)
                    log.info("recovered the checkpoint of an interrupted save from %s", candidate)
                    break
        if complete(self.last):
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(previous, ignore_errors=True)

    def save(self, backend: "object", monitor: EpochMonitor) -> None:
        """Write ``backend.save_state`` and the monitor's state for the epoch just completed."""
        if self.folder is None:
            return
        self.recover()
        staging, previous = self.folder / "last.partial", self.folder / "last.previous"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        backend.save_state(staging)  # type: ignore[attr-defined]
        monitor.save(staging / "monitor.json")
        shutil.rmtree(previous, ignore_errors=True)  # after recover(): never the only complete checkpoint
        if self.last.exists():
            self.last.rename(previous)
        staging.rename(self.last)
        shutil.rmtree(previous, ignore_errors=True)

    def restore(self, backend: "object", monitor: EpochMonitor) -> int:
        """Load the last checkpoint into ``backend`` and ``monitor``; return the epochs it completed."""
        if not self.exists():
            return 0
        try:
            backend.load_state(self.last)  # type: ignore[attr-defined]
        except Exception as err:  # noqa: BLE001 - each engine's reader raises its own types for a damaged file
            raise KxError(f"Cannot resume from the checkpoint in {self.last} ({type(err).__name__}: "
                          f"{one_line(err)}): move that folder away to start over, or choose another "
                          "train.checkpoint_dir.") from None  # fmt: skip
        monitor.load(self.last / "monitor.json")
        log.info("resuming from the checkpoint in %s after epoch %d", self.last, monitor.epochs)
        return monitor.epochs
