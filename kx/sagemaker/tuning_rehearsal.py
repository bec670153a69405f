"""``target=sagemaker_local sweep=NAME``: play the very tuning job target=sagemaker would submit, here.

From the CreateHyperParameterTuningJob request: Optuna's nearest sampler plays the strategy
(Bayesian: TPE, Random and Hyperband: random, Grid: grid) over the request's own parameter ranges;
each trial is the request's training job definition with the trial's values, run one after the other
through the ``sagemaker_local`` job rehearsal; each objective is read from the trial's log with the
request's metric definitions, the last match as SageMaker takes it. The results are logged through
the same code as a real tuning job's (:mod:`kx.sagemaker.tuning_results`).
"""

import math
import secrets
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig

from kx.sagemaker.tuning_results import Trial, record

DEFINITION_KEYS = ("AlgorithmSpecification", "RoleArn", "InputDataConfig", "OutputDataConfig", "ResourceConfig",
                   "StoppingCondition", "CheckpointConfig", "EnableManagedSpotTraining")  # fmt: skip


def distributions(ranges: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
    """The request's parameter ranges as Optuna distributions."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found: Dict[str, Any] = {}
    for r in ranges.get("IntegerParameterRanges", []):
        found[r["Name"]] = IntDistribution(int(r["MinValue"]), int(r["MaxValue"]),
                                           log=r.get("ScalingType") == "Logarithmic")  # fmt: skip
    for r in ranges.get("ContinuousParameterRanges", []):
        found[r["Name"]] = FloatDistribution(float(r["MinValue"]), float(r["MaxValue"]),
                                             log=r.get("ScalingType") == "Logarithmic")  # fmt: skip
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


def budget(config: Dict[str, Any], space: Dict[str, Any]) -> int:
    """MaxNumberOfTrainingJobs; Grid: every combination."""
    limit = config.get("ResourceLimits", {}).get("MaxNumberOfTrainingJobs")
    return limit or math.prod(len(d.choices) for d in space.values())


def training_request(definition: Dict[str, Any], name: str, values: Dict[str, str]) -> Dict[str, Any]:
    """The CreateTrainingJob request SageMaker makes for one trial."""
    request = {k: definition[k] for k in DEFINITION_KEYS if k in definition}
    hps = {**definition.get("StaticHyperParameters", {}), **values}
    return {"TrainingJobName": name, "HyperParameters": hps, **request}


def objective_value(description: Dict[str, Any], metric: str) -> Optional[float]:
    found = {m["MetricName"]: m["Value"] for m in description.get("FinalMetricDataList", [])}
    return found.get(metric) if description["TrainingJobStatus"] == "Completed" else None


def play(cfg: DictConfig, request: Dict[str, Any], job: Any, root: Path) -> List[Trial]:
    """Run the trials one after the other; a stopped trial (SIGTERM, as StopTrainingJob) ends the tuning."""
    import optuna

    from kx.sagemaker import rehearsal
    from kx.sagemaker.tuning import hp_value

    config, definition = request["HyperParameterTuningJobConfig"], request["TrainingJobDefinition"]
    goal = config["HyperParameterTuningJobObjective"]
    space = distributions(config["ParameterRanges"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=goal["Type"].lower(), sampler=sampler(config, space))
    trials: List[Trial] = []
    for number in range(1, budget(config, space) + 1):
        trial = study.ask(space)
        name = f"{request['HyperParameterTuningJobName']}-{number:03d}-{secrets.token_hex(4)}"
        values = {k: hp_value(v) for k, v in trial.params.items()}
        description = rehearsal.run(cfg, training_request(definition, name, values), job, root / name)
        description.pop("BillableTimeInSeconds", None)  # a rehearsal costs nothing
        value = objective_value(description, goal["MetricName"])
        trials.append(Trial(description, value, root / name / "output" / "data", root / name / "model"))
        study.tell(trial, value, state=None if value is not None else optuna.trial.TrialState.FAIL)
        print(f"trial {number}: {name} {description['TrainingJobStatus']} {goal['MetricName']}={value}",
              file=sys.stderr)  # fmt: skip
        if description["TrainingJobStatus"] == "Stopped":
            break
    return trials


def run(cfg: DictConfig, request: Dict[str, Any], job: Any) -> int:
    """Rehearse the tuning job; log it as a tuning job; 0 when at least one trial completed."""
    name = request["HyperParameterTuningJobName"]
    root = Path(cfg.target.root).resolve() / name
    trials = play(cfg, request, job, root)
    states = [t.description["TrainingJobStatus"] for t in trials]
    description = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobStatus": "Stopped" if "Stopped" in states else "Completed",
        "HyperParameterTuningJobConfig": request["HyperParameterTuningJobConfig"],
        "TrainingJobDefinition": request["TrainingJobDefinition"],
    }
    record(cfg, description, trials, root, cfg.sweep.name)
    return 0 if "Completed" in states else 1
