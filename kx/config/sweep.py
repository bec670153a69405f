"""The sweep file's schema, registered in Hydra's ConfigStore (``conf/sweep/*.yaml`` extend it), and
the Optuna sampler and pruner each ``sweep.sampler``/``sweep.pruner`` name stands for: a config with
its ``_target_``, as Hydra's own Optuna sweeper describes them, built by ``hydra.utils.instantiate``
only where the study is made (:mod:`kx.sweep.optuna_space`).

Runs wherever train.py runs (Python 3.8 in the MXNet image): ``typing`` forms only.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from kx.config.choices import Choice
from kx.config.objective import ObjectiveConfig


@dataclass
class TPESamplerConfig:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10  # trials sampled at random before TPE models the results


@dataclass
class RandomSamplerConfig:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class GridSamplerConfig:
    _target_: str = "kx.sweep.optuna_space.grid_sampler"
    search_space: Dict[str, List[Any]] = field(default_factory=dict)
    seed: Optional[int] = None


@dataclass
class MedianPrunerConfig:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 2  # trials finished before any is pruned
    n_warmup_steps: int = 1  # epochs a trial trains before it can be pruned


@dataclass
class NopPrunerConfig:
    _target_: str = "optuna.pruners.NopPruner"


# How trials pick their parameters (SageMaker: Bayesian, Random, Grid).
SAMPLERS: Dict[str, type] = {
    "tpe": TPESamplerConfig,
    "random": RandomSamplerConfig,
    "grid": GridSamplerConfig,
}
# How bad trials are stopped early from their per-epoch objective (SageMaker: Auto or Off); Hyperband
# moves whole trials up a ladder of epochs instead (kx.sweep.hyperband), which Optuna does not prune.
PRUNERS: Dict[str, type] = {
    "none": NopPrunerConfig,
    "median": MedianPrunerConfig,
    "hyperband": NopPrunerConfig,
}

Sampler = Choice("Sampler", [(name, name) for name in SAMPLERS])  # type: ignore[misc]
Pruner = Choice("Pruner", [(name, name) for name in PRUNERS])  # type: ignore[misc]


@dataclass
class BudgetConfig:
    trials: int = 20  # trials in all, a resumed sweep included
    parallel: int = 1  # trials at once
    max_failure_rate: float = 0.5  # stop once more than this fraction of the trials (the budget) failed
    # the study's time: no trial starts once its trials have run this long (wall time, all workers
    # and resumed runs together) and running ones are stopped then; None: no time limit
    minutes: Optional[float] = None


@dataclass
class SweepConfig:
    """A search space over config keys, in Hydra's override grammar, and how to search it."""

    name: str = MISSING
    # config key -> choice(a,b) | range(lo,hi[,step]) | interval(lo,hi) | int(interval(lo,hi)) |
    # tag(log, interval(lo,hi)); a plain value fixes the key for every trial
    params: Dict[str, str] = field(default_factory=dict)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    sampler: Sampler = Sampler.tpe
    pruner: Pruner = Pruner.none
    min_epochs: int = 1  # hyperband: the fewest epochs a trial trains (its lowest rung)
    seed: Optional[int] = None  # the sampler's seed; None: train.seed
    storage: Optional[str] = None  # where the study persists; None: sqlite:///<cwd>/sweeps.db
    study: Optional[str] = None  # the study's name; None: the sweep's name
    # workers sharing a study: each records a heartbeat for its trials every heartbeat_interval
    # seconds; a trial without one for grace_period seconds is failed and run again
    heartbeat_interval: int = 30
    grace_period: int = 120


def register() -> None:
    ConfigStore.instance().store(group="schema/sweep", name="sweep", node=SweepConfig)
