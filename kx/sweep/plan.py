"""What one ``train.py -m ...`` command asks the sweeper for: the search space, the objective, the
budget, the sampler and pruner, the study, and the overrides every trial shares.

With ``sweep=<name>`` the sweep file gives them, and sweeps on the command line (``key=a,b``,
``key=interval(...)``) add to or replace its parameters. Without one, the command-line sweeps make a
grid: every combination once, like Hydra's basic sweeper, with the same guarantees.
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from omegaconf import DictConfig

from kx.config.objective import Objective, objective
from kx.config.validate import check_ranges
from kx.errors import KxError
from kx.sweep import hyperband, optuna_space
from kx.sweep.space import Param, SpaceError, parse_param, parse_space

# overrides that may differ between runs and workers of one study
FREE = (
    "sweep.budget.",
    "sweep.storage=",
    "sweep.study=",
    "sweep.heartbeat_interval=",
    "sweep.grace_period=",
    "hydra.",
    "tracking.",
)


@dataclass
class SweepPlan:
    name: str  # the sweep file's name, or a grid's command-line sweeps
    study: str
    storage: str
    space: List[Param]
    goal: Objective
    trials: int
    parallel: int
    max_failure_rate: float
    sampler: str
    pruner: str
    seed: Optional[int]
    base_overrides: List[str]  # shared by every trial: the command's plain overrides
    heartbeat_interval: int = 30  # seconds between a worker's heartbeats for its trials
    grace_period: int = 120  # seconds without a heartbeat after which a trial is failed and retried
    minutes: Optional[float] = None  # the study's time budget
    rungs: List[int] = field(default_factory=list)  # hyperband: the epoch budgets, lowest first

    @property
    def swept(self) -> List[Param]:
        return [p for p in self.space if p.swept]

    @property
    def max_failures(self) -> int:
        """The most failed trials the sweep goes on after."""
        return int(self.max_failure_rate * self.trials)


def split_arguments(arguments: Sequence[str]) -> Tuple[List[Param], List[str]]:
    """Command-line sweeps (``key=a,b``, ``key=interval(..)``) as params; the rest as they are."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    swept: List[Param] = []
    plain: List[str] = []
    for text, override in zip(arguments, OverridesParser.create().parse_overrides(list(arguments))):
        if not override.is_sweep_override():
            plain.append(text)
            continue
        key = override.get_key_element()
        if key == "sweep" or not key[:1].isalpha():
            raise SpaceError(
                f"{text!r}: under -m, sweep {key.lstrip('+~')!r} with a plain key "
                "(key=a,b); pick one sweep file with sweep=<name>."
            )
        swept.append(parse_param(key, text.split("=", 1)[1]))
    return swept, plain


def plan(cfg: DictConfig, arguments: Sequence[str], parallel: Optional[int] = None) -> SweepPlan:
    """The sweep ``train.py -m ARGUMENTS`` runs, ``cfg`` being the composed config."""
    command_params, base = split_arguments(arguments)
    sweep = cfg.get("sweep")
    file_params = parse_space(sweep.params) if sweep else []
    by_key = {p.key: p for p in file_params}
    by_key.update({p.key: p for p in command_params})
    space = list(by_key.values())
    base = base + [f"{p.key}={p.expression}" for p in space if not p.swept]
    if parallel is not None and parallel < 1:
        raise KxError(f"hydra.sweeper.parallel={parallel}: trials at once must be 1 or more.")
    if sweep:
        return _from_file(cfg, sweep, space, base, parallel)
    study = (
        "grid-" + hashlib.sha1(("\n".join(base) + optuna_space.signature(space)).encode()).hexdigest()[:10]
    )
    name = " ".join(f"{p.key}={p.expression}" for p in space if p.swept) or "one trial"
    return SweepPlan(
        name=name,
        study=study,
        storage=default_storage(),
        space=space,
        goal=objective(cfg),
        trials=optuna_space.grid_size(space),
        parallel=parallel or 1,
        max_failure_rate=1.0,
        sampler="grid",
        pruner="none",
        seed=None,
        base_overrides=base,
    )


def _from_file(
    cfg: DictConfig, sweep: DictConfig, space: List[Param], base: List[str], parallel: Optional[int]
) -> SweepPlan:
    sampler = str(sweep.sampler)
    trials = int(sweep.budget.trials)
    check_ranges(cfg, "sweep.")  # the budget's and the heartbeat's ranges, as train.py checks them
    if sampler == "grid":
        trials = min(trials, optuna_space.grid_size(space))
    minutes = time_budget(sweep.budget.get("minutes"))
    pruner = str(sweep.pruner)
    rungs = (
        hyperband.ladder(space, int(cfg.train.epochs), int(sweep.min_epochs)) if pruner == "hyperband" else []
    )
    optuna_space.distributions(space)  # every rejection before anything runs
    return SweepPlan(
        name=str(sweep.name),
        study=str(sweep.study or sweep.name),
        storage=str(sweep.storage or default_storage()),
        space=space,
        goal=objective(cfg),
        trials=trials,
        parallel=parallel or int(sweep.budget.parallel),
        max_failure_rate=float(sweep.budget.max_failure_rate),
        sampler=sampler,
        pruner=pruner,
        seed=sampler_seed(cfg),
        base_overrides=base,
        heartbeat_interval=int(sweep.heartbeat_interval),
        grace_period=int(sweep.grace_period),
        minutes=minutes,
        rungs=rungs,
    )


def time_budget(minutes: object) -> Optional[float]:
    """``sweep.budget.minutes`` as a number, or None for no time limit (its range is
    :func:`kx.config.validate.check_ranges`'s)."""
    return None if minutes is None else float(minutes)  # type: ignore[arg-type]


def sampler_seed(cfg: DictConfig) -> int:
    """The sweep's sampler seed: ``sweep.seed``, else ``train.seed`` (local and SageMaker tuners alike)."""
    check_ranges(cfg, "train.seed")  # the sweep's own keys are checked with its budget
    return int(cfg.train.seed if cfg.sweep.seed is None else cfg.sweep.seed)


def default_storage() -> str:
    return f"sqlite:///{Path.cwd() / 'sweeps.db'}"


def identity(plan: SweepPlan) -> str:
    """What a resumed study must share with its first run: space, objective and trial overrides.
    (The budget, the parallelism, where the study is kept, heartbeats and tracking may change
    between runs and differ between workers.)"""
    shared = [o for o in sorted(plan.base_overrides) if not o.startswith(FREE)]
    return "\n".join(
        [optuna_space.signature(plan.space), f"{plan.goal.metric} {plan.goal.direction}", *shared]
    )


def identity_lines(text: str) -> List[str]:
    """A stored identity's lines that must match (older kx stored some that may change)."""
    return [line for line in text.splitlines() if not line.startswith(FREE)]
