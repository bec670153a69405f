"""What a training run reports to: the observers an entry point passes to :func:`kx.pipeline.run`.

train.py passes the export contract (kx.serving.contract), the MLflow run (kx.tracking.observer) and a
sweep's trial (kx.sweep.trial), so that the pipeline imports none of them. Every hook does nothing
unless an observer overrides it. Runs inside SageMaker jobs (Python 3.8).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig


@dataclass
class RunEnd:
    """How a run ended: finished, or stopped (``stopped``) with its completed epochs kept."""

    backend: Any
    monitor: Any  # kx.backends.EpochMonitor
    data: Any  # kx.data.Dataset
    files: List[Path]  # the run folder's files to keep (config, metrics, plots)
    model_dir: Path
    stopped: bool
    model_accuracy: Optional[float] = None  # the exported model's validation accuracy (finished runs)


class RunObserver:
    """One thing a run reports to; see the module docstring."""

    def started(self, cfg: DictConfig, out_dir: Path, is_chief: bool) -> None:
        """The run starts (after its checkpoint's settings are checked); ``is_chief``: the host that
        exports and tracks."""

    def prepared(self, data: Any, backend: Any) -> None:
        """The data is loaded and the engine is ready."""

    def epoch(self, epoch: int, metrics: Dict[str, float]) -> None:
        """An epoch ended with ``metrics``; raising stops the run (a sweep's pruner)."""

    def export_files(self, model_dir: Path, exported: List[Path], data: Any, backend: Any) -> List[Path]:
        """The model is exported (``exported``) on the first host; return files written beside it."""
        return []

    def exported(self, model_dir: Path, stopped: bool) -> None:
        """The model is in ``model_dir`` (every host)."""

    def ended(self, end: RunEnd) -> None:
        """The run's results are written (finished or stopped)."""

    def failed(self, stopped: bool) -> None:
        """The run raised; ``stopped``: on purpose (a signal, a pruner), else a failure."""
