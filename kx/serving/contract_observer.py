"""Writes the model contract (:mod:`kx.serving.contract`) beside every export a training run makes."""

from pathlib import Path
from typing import Any, List, Optional

from omegaconf import DictConfig

from kx.observer import RunObserver
from kx.serving import contract


class ContractWriter(RunObserver):
    """Adds ``<name>-contract.json`` to the export's files."""

    cfg: Optional[DictConfig] = None

    def started(self, cfg: DictConfig, out_dir: Path, is_chief: bool) -> None:
        self.cfg = cfg

    def export_files(self, model_dir: Path, exported: List[Path], data: Any, backend: Any) -> List[Path]:
        return [contract.write(self.cfg, data, backend, model_dir, exported)]
