"""kx's Hydra sweeper: every ``train.py -m`` runs through it (``conf/config.yaml`` selects it).

``python train.py -m sweep=<name>`` tunes the sweep file's search space with Optuna; a plain
``python train.py -m a=1,2 b=3,4`` runs the grid of the command-line sweeps. Either way each trial
is a fresh ``train.py`` process and an MLflow child run of one parent run, the study persists and
resumes, and a failing trial never ends the sweep. The work is in :mod:`kx.sweep.runner`.
"""

import inspect
import sys
from dataclasses import dataclass
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from kx import process


@dataclass
class KxSweeperConf:
    _target_: str = "hydra_plugins.kx_sweeper.kx_sweeper.KxSweeper"
    # trials at once; None: the sweep file's budget.parallel (1 for a plain grid)
    parallel: Optional[int] = None


ConfigStore.instance().store(group="hydra/sweeper", name="kx", node=KxSweeperConf, provider="kx")


class KxSweeper(Sweeper):
    def __init__(self, parallel: Optional[int] = None) -> None:
        self.parallel = parallel
        self.config: Optional[DictConfig] = None
        self.script = ""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.script = inspect.getfile(inspect.unwrap(task_function))

    def sweep(self, arguments: List[str]) -> Any:
        from kx.errors import KxError, one_line
        from kx.quiet import quiet_console
        from kx.sweep.runner import run_sweep

        process.quiet_libraries()
        quiet_console()  # the sweep's own console: kx's lines; MLflow's and Optuna's in its log file

        assert self.config is not None
        command = [sys.executable, self.script, "--config-name", str(self.config.hydra.job.config_name)]
        try:
            return run_sweep(self.config, arguments, command, self.parallel)
        except KxError as err:
            print(f"kx: error: {one_line(err)}", file=sys.stderr)
            sys.exit(2)
