"""Per-epoch checkpoints: the last completed epoch's full training state, for resuming.

Managed spot training and restarted jobs lose at most the epoch in progress: each completed
epoch replaces ``<folder>/last/`` (written beside it, then renamed), and a new run in the same
folder picks up from there. A checkpoint records the settings it was trained with
(``trained_with.json``), and only a run with the same settings resumes it: any other fails in one
line naming the differences, never silently training on (or exporting) another run's model.
"""

import json
import logging
import shutil
from pathlib import Path
from typing import Dict, Optional

from kx.backends.monitor import EpochMonitor
from kx.errors import KxError, one_line

log = logging.getLogger("kx")
SETTINGS_FILE = "trained_with.json"


class CheckpointMismatch(KxError):
    """The checkpoint folder holds another run's training."""


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
    ``settings`` are the run's flattened training settings, which a checkpoint must share to be resumed.
    """

    def __init__(self, folder: Optional[str], settings: Optional[Dict[str, str]] = None) -> None:
        self.folder = Path(folder) if folder else None
        self.settings = settings or {}

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
        (staging / SETTINGS_FILE).write_text(json.dumps(self.settings, indent=1, sort_keys=True))
        monitor.save(staging / "monitor.json")  # last: a folder is complete once it reads back
        shutil.rmtree(previous, ignore_errors=True)  # after recover(): never the only complete checkpoint
        if self.last.exists():
            self.last.rename(previous)
        staging.rename(self.last)
        shutil.rmtree(previous, ignore_errors=True)

    def restore(self, backend: "object", monitor: EpochMonitor) -> int:
        """Load the last checkpoint into ``backend`` and ``monitor``; return the epochs it completed."""
        if not self.exists():
            return 0
        self.check_settings()
        try:
            backend.load_state(self.last)  # type: ignore[attr-defined]
        except Exception as err:  # noqa: BLE001 - each engine's reader raises its own types for a damaged file
            raise KxError(
                f"Cannot resume from the checkpoint in {self.last} ({type(err).__name__}: "
                f"{one_line(err)}): move that folder away to start over, or choose another "
                "train.checkpoint_dir."
            ) from None
        monitor.load(self.last / "monitor.json")
        log.info("resuming from the checkpoint in %s after epoch %d", self.last, monitor.epochs)
        return monitor.epochs

    def newest(self) -> Optional[Path]:
        """The checkpoint :meth:`recover` would keep, found without touching the folder (its run may
        still be saving into it)."""
        if self.folder is None:
            return None
        candidates = (self.last, self.folder / "last.partial", self.folder / "last.previous")
        return next((c for c in candidates if complete(c)), None)

    def check_settings(self) -> None:
        """:class:`CheckpointMismatch` unless the newest checkpoint was trained with this run's settings."""
        newest = self.newest()
        if newest is None:
            return
        recorded = newest / SETTINGS_FILE
        if not recorded.is_file():
            raise CheckpointMismatch(
                f"The checkpoint in {newest} does not record the settings it was trained "
                f"with, so it cannot be resumed safely; {self._advice()}."
            )
        theirs = json.loads(recorded.read_text())
        keys = sorted(set(theirs) | set(self.settings))
        differ = [k for k in keys if theirs.get(k) != self.settings.get(k)]
        if differ:
            shown = "; ".join(
                f"{k}={theirs.get(k, '(unset)')} there, {self.settings.get(k, '(unset)')} here"
                for k in differ[:5]
            )
            more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
            raise CheckpointMismatch(
                f"The checkpoint in {newest} belongs to a run with other settings "
                f"({shown}{more}); {self._advice()}."
            )

    def _advice(self) -> str:
        return f"give this run its own train.checkpoint_dir, or remove {self.folder} to start afresh"
