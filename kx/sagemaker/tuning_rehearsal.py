"""``target=sagemaker_local sweep=NAME``: play the very tuning job target=sagemaker would submit, here.

From the CreateHyperParameterTuningJob request, playing the service's side: Optuna's nearest sampler
plays the strategy (Bayesian: TPE, Random and Hyperband: random, Grid: grid) over the request's own
parameter ranges, seeded with its ``RandomSeed``; each trial is the request's training job definition
with the trial's values and the service's own ``_tuning_objective_metric``, run one after the other
through the ``sagemaker_local`` job rehearsal (which syncs the definition's ``CheckpointConfig`` into
every trial as the service does). With ``TrainingJobEarlyStoppingType=Auto`` the objective's values are
read from the trial's log as they come, and a trial worse than the median of the earlier trials at
the same epoch is stopped by SIGTERM (Optuna's median pruner plays the service's median rule). Each
trial is then described as ListTrainingJobsForHyperParameterTuningJob and DescribeTrainingJob
describe it (the objective the last match of its regex, ``ObjectiveStatus`` Succeeded when one
matched), and logged through the same code as a real tuning job's (:mod:`kx.sagemaker.tuning_results`).
"""

import math
import re
import secrets
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from omegaconf import DictConfig

from kx import process
from kx.sagemaker import rehearsal
from kx.sagemaker.script_mode import RESERVED_KEYS, encode_value
from kx.sagemaker.tuning_results import TunedJob, record, tuned_job

TUNING_METRIC_KEY = RESERVED_KEYS[0]  # the service names the objective in every trial's hyperparameters

DEFINITION_KEYS = (
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "CheckpointConfig",
    "EnableManagedSpotTraining",
    "Environment",
)


def distributions(ranges: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
    """The request's parameter ranges as Optuna distributions."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found: Dict[str, Any] = {}
    for r in ranges.get("IntegerParameterRanges", []):
        found[r["Name"]] = IntDistribution(
            int(r["MinValue"]), int(r["MaxValue"]), log=r.get("ScalingType") == "Logarithmic"
        )
    for r in ranges.get("ContinuousParameterRanges", []):
        found[r["Name"]] = FloatDistribution(
            float(r["MinValue"]), float(r["MaxValue"]), log=r.get("ScalingType") == "Logarithmic"
        )
    for r in ranges.get("CategoricalParameterRanges", []):
        found[r["Name"]] = CategoricalDistribution(r["Values"])
    return found


def sampler(config: Dict[str, Any], space: Dict[str, Any]) -> Any:
    """Optuna's nearest counterpart of the tuning job's strategy."""
    import optuna

    seed = config.get("RandomSeed")
    if config["Strategy"] == "Bayesian":
        return optuna.samplers.TPESampler(seed=seed)
    if config["Strategy"] == "Grid":
        return optuna.samplers.GridSampler({k: list(d.choices) for k, d in space.items()}, seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def pruner(config: Dict[str, Any]) -> Any:
    """The service's early stopping (a median rule over the earlier trials), or none."""
    import optuna

    if config.get("TrainingJobEarlyStoppingType") == "Auto":
        return optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def budget(config: Dict[str, Any], space: Dict[str, Any]) -> int:
    """MaxNumberOfTrainingJobs; Grid: every combination."""
    limit = config.get("ResourceLimits", {}).get("MaxNumberOfTrainingJobs")
    return limit or math.prod(len(d.choices) for d in space.values())


def training_request(
    definition: Dict[str, Any], name: str, values: Dict[str, str], objective: str
) -> Dict[str, Any]:
    """The CreateTrainingJob request SageMaker makes for one trial: the definition's static
    hyperparameters, the trial's values and the service's reserved objective key."""
    request = {k: definition[k] for k in DEFINITION_KEYS if k in definition}
    hps = {**definition.get("StaticHyperParameters", {}), **values, TUNING_METRIC_KEY: objective}
    return {"TrainingJobName": name, "HyperParameters": hps, **request}


def objective_value(description: Dict[str, Any], metric: str) -> Optional[float]:
    """The objective as the service reads it: its regex's last match in the log, if any."""
    found = {m["MetricName"]: m["Value"] for m in description.get("FinalMetricDataList", [])}
    return found.get(metric) if description["TrainingJobStatus"] != "Failed" else None


def listed_job(description: Dict[str, Any], values: Dict[str, str], metric: str) -> Dict[str, Any]:
    """The training job as ListTrainingJobsForHyperParameterTuningJob lists it."""
    value = objective_value(description, metric)
    summary = {
        key: description[key]
        for key in (
            "TrainingJobName",
            "TrainingJobStatus",
            "CreationTime",
            "TrainingStartTime",
            "TrainingEndTime",
        )
    }
    summary.update(TunedHyperParameters=values, ObjectiveStatus="Failed" if value is None else "Succeeded")
    if value is not None:
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": metric, "Value": value}
    return summary


class EarlyStopping:
    """Reports each objective value a trial logs (one per epoch) to its Optuna trial; says stop when
    the study's pruner does, and remembers that it did."""

    def __init__(self, trial: Any, regex: str) -> None:
        self.trial, self.regex = trial, re.compile(regex)
        self.epochs = 0
        self.stopped = False

    def __call__(self, line: str) -> bool:
        found = self.regex.search(line)
        if found and "best_" not in line:  # the best-epoch lines come last, after the epochs
            self.epochs += 1
            self.trial.report(float(found.group(1)), self.epochs)
            self.stopped = self.stopped or self.trial.should_prune()
        return self.stopped


def play(cfg: DictConfig, request: Dict[str, Any], job: Any, root: Path) -> Tuple[List[TunedJob], bool]:
    """Run the training jobs one after the other, each for an Optuna trial; return them, and whether the tuning job was stopped (SIGTERM
    to this process, as StopHyperParameterTuningJob: it ends the tuning, an early-stopped trial does not)."""
    import optuna
    from optuna.trial import TrialState

    config, definition = request["HyperParameterTuningJobConfig"], request["TrainingJobDefinition"]
    goal = config["HyperParameterTuningJobObjective"]
    regex = next(
        d["Regex"]
        for d in definition["AlgorithmSpecification"]["MetricDefinitions"]
        if d["Name"] == goal["MetricName"]
    )
    space = distributions(config["ParameterRanges"])
    process.quiet_optuna_logs()
    study = optuna.create_study(
        direction=goal["Type"].lower(), sampler=sampler(config, space), pruner=pruner(config)
    )
    jobs: List[TunedJob] = []
    for number in range(budget(config, space)):
        optuna_trial = study.ask(space)
        name = f"{request['HyperParameterTuningJobName']}-{number + 1:03d}-{secrets.token_hex(4)}"
        values = {k: v if isinstance(v, str) else encode_value(v) for k, v in optuna_trial.params.items()}
        watch = EarlyStopping(optuna_trial, regex)
        description = rehearsal.run(
            cfg,
            training_request(definition, name, values, goal["MetricName"]),
            job,
            root / name,
            stop_when=watch,
        )
        description.pop("BillableTimeInSeconds", None)  # a rehearsal costs nothing
        pruned = description["TrainingJobStatus"] == "Stopped" and watch.stopped
        summary = listed_job(description, values, goal["MetricName"])
        jobs.append(tuned_job(summary, description, root / name / "output" / "data", root / name / "model"))
        value = jobs[-1].objective
        state = TrialState.PRUNED if pruned else TrialState.COMPLETE if value is not None else TrialState.FAIL
        study.tell(optuna_trial, value if state == TrialState.COMPLETE else None, state=state)
        print(
            f"trial {number + 1}: {name} {description['TrainingJobStatus']}{' (early stopping)' if pruned else ''} "
            f"{goal['MetricName']}={value}",
            file=sys.stderr,
        )
        if description["TrainingJobStatus"] == "Stopped" and not pruned:
            return jobs, True
    return jobs, False


def run(cfg: DictConfig, request: Dict[str, Any], job: Any) -> int:
    """Rehearse the tuning job; log it as a tuning job; 0 when at least one trial completed."""
    name = request["HyperParameterTuningJobName"]
    root = Path(cfg.target.root).resolve() / name
    jobs, stopped = play(cfg, request, job, root)
    description = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobStatus": "Stopped" if stopped else "Completed",
        "HyperParameterTuningJobConfig": request["HyperParameterTuningJobConfig"],
        "TrainingJobDefinition": request["TrainingJobDefinition"],
    }
    record(cfg, description, jobs, root, cfg.sweep.name)
    return 0 if any(t.state in ("COMPLETE", "PRUNED") for t in jobs) else 1
