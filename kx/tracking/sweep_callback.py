"""Hydra callback that makes every ``-m`` sweep one MLflow parent run with a child run per job."""

import logging
import os
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("kx")


class MLflowSweepCallback(Callback):
    """Opens the parent run before the first job and summarises the best child at the end."""

    def __init__(self) -> None:
        self.run: Optional[Any] = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.tracking.enabled:
            return
        from kx.tracking import open_run
        from kx.tracking.mlflow_tracker import PARENT_RUN_ENV

        self.run = open_run(config.tracking)
        hydra_cfg = config.hydra  # HydraConfig is not set yet at this point
        self.run.start(
            config.tracking.run_name or f"sweep {os.path.basename(hydra_cfg.sweep.dir)}",
            {
                "kx.sweep": "true",
                "kx.sweeper": hydra_cfg.sweeper._target_.rsplit(".", 1)[-1],
                "kx.overrides": " ".join(hydra_cfg.overrides.task),
                "kx.output_dir": os.path.abspath(hydra_cfg.sweep.dir),
                "mlflow.source.name": "train.py",
            },
            parent_run_id=None,
        )
        os.environ[PARENT_RUN_ENV] = self.run.run_id
        log.info("MLflow sweep run %s (experiment %r)", self.run.run_id, config.tracking.experiment)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.run is None:
            return
        from kx.config import objective
        from kx.tracking.mlflow_tracker import PARENT_RUN_ENV, child_runs

        os.environ.pop(PARENT_RUN_ENV, None)
        goal = objective(config)
        monitor = f"best_{goal.metric}"
        children = [c for c in child_runs(self.run, self.run.run_id) if monitor in c.data.metrics]
        if children:
            best = (max if goal.maximize else min)(children, key=lambda c: c.data.metrics[monitor])
            self.run.log_metrics({monitor: best.data.metrics[monitor], "trials": len(children)})
            self.run.set_tags({"kx.best_run_id": best.info.run_id})
        self.run.end()
