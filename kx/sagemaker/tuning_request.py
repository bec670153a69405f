"""A sweep file as a SageMaker hyperparameter tuning job (``launch.py target=sagemaker sweep=NAME``).

The sweep's search space (:func:`kx.sweep.space.parse_space`) becomes the tuner's parameter ranges,
its objective the tuner's objective metric, its budget, sampler and pruner the tuning job's limits,
strategy and early stopping. What SageMaker cannot express fails here, before anything is uploaded:

==========================  =====================================================================
sweep file                  tuning job
==========================  =====================================================================
``choice(a, b, ...)``       categorical range (at most 30 values)
``range(lo, hi)``           integer range (``hi`` excluded; a stepped range has no counterpart)
``int(interval(lo, hi))``   integer range
``interval(lo, hi)``        continuous range
``tag(log, ...)``           ``ScalingType=Logarithmic`` (otherwise ``Linear``, as Optuna samples it)
a plain value               a static hyperparameter
``sampler``                 ``tpe``: Bayesian, ``random``: Random, ``grid``: Grid (categorical only)
``pruner``                  ``median``: automatic early stopping; ``hyperband``: the Hyperband
                            strategy (it samples at random: ``sampler=random``)
``budget``                  ``trials``: maximum training jobs, ``parallel``: jobs at once,
                            ``minutes``: ``MaxRuntimeInSeconds`` (the tuning job's wall time,
                            instance start-up included; locally the trials' own time)
``min_epochs``              Hyperband's ``MinResource``: the lowest rung the local sweep uses
``seed``                    the tuner's random seed (``train.seed`` when unset, as locally)
==========================  =====================================================================

Every value travels as the training job's hyperparameters do (:func:`~kx.sagemaker.script_mode.encode_value`),
so a trial's train.py gets the very values a local trial gets. A range that cannot run on the job's
hosts (a batch that does not split over them) or that fights Hyperband's own use of epochs fails
here too.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from omegaconf import DictConfig

from kx.config import Objective, batch_size, objective
from kx.errors import KxError
from kx.sagemaker.job_request import METRIC_DEFINITIONS, job_name
from kx.sagemaker.job_request import request as step_request
from kx.sagemaker.script_mode import check_keys, encode_value
from kx.sagemaker.validate import validate
from kx.sweep import hyperband
from kx.sweep.plan import sampler_seed, time_budget
from kx.sweep.space import Param, parse_space

MAX_CHOICES = 30  # SageMaker's limit on a categorical range's values
MIN_RUNTIME_S, MAX_RUNTIME_S = 120, 15768000  # the API's bounds on MaxRuntimeInSeconds
NAME_LENGTH = 32  # SageMaker's limit on a tuning job's name
STRATEGIES = {"tpe": "Bayesian", "random": "Random", "grid": "Grid"}


class TuningError(KxError):
    """The sweep file asks for something a SageMaker tuning job cannot do."""


@dataclass
class TuningSpec:
    """The tuning job a sweep file translates to, in the API's own terms."""

    ranges: Dict[str, Dict[str, Any]]  # name -> {"kind": Integer|Continuous|Categorical, ...}
    static: Dict[str, str]  # fixed params and, when it differs from train.objective, the objective
    goal: Objective
    strategy: str
    early_stopping: str  # Off | Auto
    max_jobs: Optional[int]  # None for Grid: SageMaker runs every combination
    max_parallel: int
    seed: int
    max_resource: Optional[int] = None  # Hyperband: the most epochs a trial trains
    min_resource: int = 1  # Hyperband: the fewest (the local sweep's lowest rung)
    max_runtime_s: Optional[int] = None  # budget.minutes: the tuning job's MaxRuntimeInSeconds
    warm_start: List[str] = field(default_factory=list)
    warm_start_type: str = "IdenticalDataAndAlgorithm"

    @property
    def objective_metric(self) -> str:
        """The tuner's objective: the best epoch's value, named as on local sweep parents."""
        return f"best_{self.goal.metric}"


def parameter_range(param: Param) -> Dict[str, Any]:
    """One swept key as a SageMaker parameter range, or :class:`TuningError` naming it and why."""
    where = f"sweep.params.{param.key}={param.expression!r}"
    if param.kind == "categorical":
        if len(param.choices) > MAX_CHOICES:
            raise TuningError(
                f"{where}: a SageMaker categorical range takes at most {MAX_CHOICES} "
                f"values, this one has {len(param.choices)}."
            )
        return {"kind": "Categorical", "values": [encode_value(v) for v in param.choices]}
    if param.kind == "int" and (param.step or 1) != 1:
        raise TuningError(
            f"{where}: SageMaker integer ranges have no step; use range(lo,hi) or "
            "choice(...) with the values wanted."
        )
    scaling = "Logarithmic" if param.log else "Linear"  # Auto would let the service pick a log scale
    if param.kind == "int":
        return {"kind": "Integer", "min": int(param.low), "max": int(param.high), "scaling": scaling}
    return {"kind": "Continuous", "min": param.low, "max": param.high, "scaling": scaling}


def strategy(sweep: DictConfig, ranges: Dict[str, Dict[str, Any]]) -> Dict[str, str]:
    """The strategy and early stopping for the sweep's sampler and pruner."""
    sampler, pruner = str(sweep.sampler), str(sweep.pruner)
    if pruner == "hyperband":
        if sampler != "random":
            raise TuningError(
                f"sweep.sampler={sampler} with sweep.pruner=hyperband: SageMaker's Hyperband "
                "strategy picks trials at random; use sweep.sampler=random, or "
                "sweep.pruner=median for Bayesian search with early stopping."
            )
        return {"strategy": "Hyperband", "early_stopping": "Off"}  # Hyperband stops trials itself
    chosen = STRATEGIES[sampler]
    if chosen == "Grid":
        for name, spec in ranges.items():
            if spec["kind"] != "Categorical":
                raise TuningError(
                    f"sweep.params.{name}: sweep.sampler=grid takes choice(...) ranges only "
                    f"in SageMaker, this one is {spec['kind'].lower()}."
                )
    return {"strategy": chosen, "early_stopping": "Auto" if pruner == "median" else "Off"}


def check_hosts(cfg: DictConfig, params: List[Param]) -> None:
    """Every batch size a trial may get must split evenly over the job's hosts."""
    hosts = int(cfg.target.instance_count)
    if hosts == 1:
        return
    batch = next((p for p in params if p.key == "train.batch_size"), None)
    if batch is not None and batch.kind == "int":
        raise TuningError(
            f"sweep.params.train.batch_size={batch.expression!r}: with target.instance_count={hosts} "
            f"each batch splits over the hosts, and most sizes in this range do not; give "
            f"choice(...) of multiples of {hosts}."
        )
    where, sizes = _batch_sizes(cfg, batch)
    uneven = [size for size in sizes if int(size) % hosts]
    if uneven:
        raise TuningError(
            f"{where}: with target.instance_count={hosts} the batch must be a multiple of "
            f"{hosts}, and {', '.join(map(str, uneven))} is not."
        )


def _batch_sizes(cfg: DictConfig, batch: Optional[Param]) -> Tuple[str, Sequence[Any]]:
    """Where the trials' batch sizes come from, and every size they may be."""
    if batch is not None:
        return f"sweep.params.train.batch_size={batch.expression!r}", batch.choices
    if cfg.train.batch_size is not None:
        return f"train.batch_size={cfg.train.batch_size}", (cfg.train.batch_size,)
    sizes = batch_size.candidates()
    return f"train.batch_size=null (automatic: one of {', '.join(map(str, sizes))})", sizes


def check_hyperband(cfg: DictConfig, ranges: Dict[str, Dict[str, Any]], params: List[Param]) -> List[int]:
    """Hyperband gives each trial its epochs (the resource, up to ``train.epochs``): a swept
    ``train.epochs`` would fight it. Return the fewest and the most epochs a trial trains, the
    local sweep's lowest and highest rungs (:func:`kx.sweep.hyperband.ladder`)."""
    if "train.epochs" in ranges:
        raise TuningError(
            "sweep.params.train.epochs with sweep.pruner=hyperband: Hyperband gives each trial "
            "its epochs itself, up to train.epochs; remove train.epochs from sweep.params "
            "and set train.epochs to the most a trial may train."
        )
    rungs = hyperband.ladder(params, int(cfg.train.epochs), int(cfg.sweep.min_epochs))
    return [rungs[0], rungs[-1]]


def max_runtime(sweep: DictConfig) -> Optional[int]:
    """``budget.minutes`` as the tuning job's ``MaxRuntimeInSeconds`` (which the API bounds)."""
    minutes = time_budget(sweep.budget.get("minutes"))
    if minutes is None:
        return None
    seconds = int(round(minutes * 60))
    if not MIN_RUNTIME_S <= seconds <= MAX_RUNTIME_S:
        raise TuningError(
            f"sweep.budget.minutes={minutes:g}: a SageMaker tuning job's MaxRuntimeInSeconds "
            f"must be from {MIN_RUNTIME_S} to {MAX_RUNTIME_S}; give {MIN_RUNTIME_S // 60} "
            f"to {MAX_RUNTIME_S // 60} minutes, or null."
        )
    return seconds


def translate(cfg: DictConfig) -> TuningSpec:
    """The tuning job for ``cfg.sweep``; every rejection is one line naming the parameter and why."""
    sweep = cfg.sweep
    params = parse_space(sweep.params)
    # a key train.py would reject would fail every trial: the same check, before anything runs
    check_keys({p.key: "" for p in params}, cfg)
    ranges = {p.key: parameter_range(p) for p in params if p.swept}
    if not ranges:
        raise TuningError(f"sweep={sweep.name} sweeps nothing: give at least one range in sweep.params.")
    check_hosts(cfg, params)
    static = {p.key: encode_value(p.choices[0]) for p in params if not p.swept}
    goal = objective(cfg)
    if (goal.metric, goal.direction) != (str(cfg.train.objective.metric), str(cfg.train.objective.direction)):
        # each trial's early stopping and best epoch must judge by the sweep's objective too
        static.update({"train.objective.metric": goal.metric, "train.objective.direction": goal.direction})
    plan = strategy(sweep, ranges)
    fewest, most = check_hyperband(cfg, ranges, params) if plan["strategy"] == "Hyperband" else [1, None]
    return TuningSpec(
        ranges=ranges,
        static=static,
        goal=goal,
        strategy=plan["strategy"],
        early_stopping=plan["early_stopping"],
        max_jobs=None if plan["strategy"] == "Grid" else int(sweep.budget.trials),
        max_parallel=int(sweep.budget.parallel),
        seed=sampler_seed(cfg),
        max_resource=most,
        min_resource=fewest,
        max_runtime_s=max_runtime(sweep),
        warm_start=list(cfg.target.warm_start),
        warm_start_type=str(cfg.target.warm_start_type),
    )


def metric_definitions(goal: Objective) -> List[Dict[str, str]]:
    """The training job's metric definitions, the objective's matching every epoch's value too.

    SageMaker's early stopping and Hyperband compare the objective's values as the epochs go; its
    final value is the regex's last match, the ``best_<metric>=`` line train.py prints last.
    """
    objective_name = f"best_{goal.metric}"
    regex = rf"\b(?:best_)?{goal.metric}=([0-9.]+)"
    return [
        {"Name": d["Name"], "Regex": regex if d["Name"] == objective_name else d["Regex"]}
        for d in METRIC_DEFINITIONS
    ]


def sdk_ranges(ranges: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The ranges as the SDK's parameter objects."""
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    built = {}
    for name, spec in ranges.items():
        if spec["kind"] == "Categorical":
            built[name] = CategoricalParameter(spec["values"])
        else:
            kind = IntegerParameter if spec["kind"] == "Integer" else ContinuousParameter
            built[name] = kind(spec["min"], spec["max"], scaling_type=spec["scaling"])
    return built


def tuner(spec: TuningSpec, trainer: Any, base_name: str) -> Any:
    """The SDK's ``HyperparameterTuner`` around ``trainer`` (whose hyperparameters become static)."""
    from sagemaker.core.shapes import (
        HyperbandStrategyConfig,
        HyperParameterTuningJobStrategyConfig,
        HyperParameterTuningJobWarmStartConfig,
        ParentHyperParameterTuningJob,
    )
    from sagemaker.train.tuner import HyperparameterTuner

    trainer.hyperparameters = {**trainer.hyperparameters, **spec.static}
    warm_start = HyperParameterTuningJobWarmStartConfig(
        parent_hyper_parameter_tuning_jobs=[
            ParentHyperParameterTuningJob(hyper_parameter_tuning_job_name=n) for n in spec.warm_start
        ],
        warm_start_type=spec.warm_start_type,
    )
    hyperband = HyperParameterTuningJobStrategyConfig(
        hyperband_strategy_config=HyperbandStrategyConfig(
            min_resource=spec.min_resource, max_resource=spec.max_resource
        )
    )
    return HyperparameterTuner(
        trainer,
        objective_metric_name=spec.objective_metric,
        hyperparameter_ranges=sdk_ranges(spec.ranges),
        metric_definitions=metric_definitions(spec.goal),
        strategy=spec.strategy,
        objective_type="Maximize" if spec.goal.maximize else "Minimize",
        max_jobs=spec.max_jobs,
        max_parallel_jobs=spec.max_parallel,
        max_runtime_in_seconds=spec.max_runtime_s,
        base_tuning_job_name=base_name,
        warm_start_config=warm_start if spec.warm_start else None,
        strategy_config=hyperband if spec.max_resource else None,
        early_stopping_type=spec.early_stopping,
        random_seed=spec.seed,
    )


def request(spec: TuningSpec, trainer: Any, session: Any, base_name: str) -> Dict[str, Any]:
    """The validated CreateHyperParameterTuningJob request, built offline by the SDK."""

    built = tuner(spec, trainer, base_name)
    name = job_name(base_name, NAME_LENGTH)
    req = step_request(session, built.tune(wait=False), "HyperParameterTuningJobName", name)
    validate(req, "CreateHyperParameterTuningJob")
    return req
