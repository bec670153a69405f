"""A tuning job in MLflow: one parent run, a child run per finished training job, the sweep report.

Real tuning jobs and their rehearsals come here in the same shape: the DescribeHyperParameterTuningJob
response and, per trial, its DescribeTrainingJob response with the job's ``metrics.json`` when its
output has one. Recording again finds the parent and the children by their job names and adds only
what is new, so ``launch.py results JOB`` can run any number of times.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig

from kx.config import Objective
from kx.sagemaker.job_tracking import record_job
from kx.sagemaker.job_watch import summary
from kx.sagemaker.script_mode import decode_value, job_value, split_toolkit_keys
from kx.sweep.report import TrialResult, summarize
from kx.tracking import open_run
from kx.tracking.links import announce
from kx.tracking.mlflow_tracker import child_runs

TRIAL_STATES = {"Completed": "COMPLETE", "Failed": "FAIL", "Stopped": "KILLED"}  # others: RUNNING
# A trial the tuner's early stopping ended is ``Stopped`` with its objective read (``ObjectiveStatus``
# Succeeded): PRUNED with that value, as a local trial its pruner stopped.
EARLY_STOPPED = "PRUNED"
PARENT_STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Stopped": "KILLED"}
TUNING_TAG = "kx.sagemaker.tuning_job"


@dataclass
class TunedJob:
    """One training job of a tuning job (the service's "trial"): kx records it as a sweep trial."""

    description: Dict[str, Any]  # DescribeTrainingJob
    objective: Optional[float] = None  # the tuning job's objective value for it, as SageMaker read it
    output: Optional[Path] = None  # its output data here (metrics.json...), when it has some
    model: Optional[Path] = None  # its model folder, when it is here (a rehearsal)

    @property
    def state(self) -> str:
        """The job's state as a sweep trial's (COMPLETE, PRUNED, FAIL, KILLED, RUNNING)."""
        status = self.description["TrainingJobStatus"]
        if status == "Stopped" and self.objective is not None:
            return EARLY_STOPPED
        return TRIAL_STATES.get(status, "RUNNING")


def tuned_job(
    summary: Dict[str, Any],
    description: Dict[str, Any],
    output: Optional[Path] = None,
    model: Optional[Path] = None,
) -> TunedJob:
    """A tuned job from its ListTrainingJobsForHyperParameterTuningJob summary and DescribeTrainingJob
    response: its objective is the value the tuner read, when it read one (``ObjectiveStatus``)."""
    read = summary.get("ObjectiveStatus", "Succeeded") == "Succeeded"
    value = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value") if read else None
    return TunedJob(description, value, output, model)


def goal_of(tuning: Dict[str, Any]) -> Objective:
    """The sweep's objective from the tuning job's (``best_val_acc``, Maximize)."""
    spec = tuning["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    return Objective(spec["MetricName"].replace("best_", "", 1), spec["Type"].lower())


def swept_keys(tuning: Dict[str, Any]) -> List[str]:
    ranges = tuning["HyperParameterTuningJobConfig"].get("ParameterRanges", {})
    return [r["Name"] for kind in ranges.values() for r in kind]


def base_overrides(tuning: Dict[str, Any]) -> List[str]:
    """The trials' shared settings as train.py overrides (static hyperparameters, toolkit keys out)."""

    static = tuning.get("TrainingJobDefinition", {}).get("StaticHyperParameters", {})
    script = split_toolkit_keys(static)[0]
    script.pop("train.checkpoint_dir", None)  # the job's /opt/ml/checkpoints, set by launch.py
    return [f"{k}={decode_value(v)}" for k, v in script.items()]


def parent_run(cfg: DictConfig, tuning: Dict[str, Any], sweep: Optional[str]) -> Any:
    """The tuning job's parent run: found by its tag, or started."""

    run = open_run(cfg.tracking)
    name = tuning["HyperParameterTuningJobName"]
    found = run.client.search_runs([run.experiment_id], filter_string=f"tags.`{TUNING_TAG}` = '{name}'")
    found = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    if found:
        run.run_id = found[0].info.run_id
        return run
    config = tuning["HyperParameterTuningJobConfig"]
    tags = {
        TUNING_TAG: name,
        "kx.sweep": "true",
        "kx.sweeper": "sagemaker",
        "kx.target": cfg.target.name,
        "kx.sagemaker.strategy": config["Strategy"],
        "mlflow.source.name": "launch.py",
    }
    if sweep:
        tags["kx.sweep.name"] = sweep
    run.start(name, tags, parent_run_id=None)
    return run


def trial_number(job_name: str, place: int) -> int:
    """A tuning job's trial as SageMaker numbers it: the ``NNN`` its job is named with
    (``<tuning job>-NNN-<hex>``, from 1), so the console, the table and the job names agree."""
    found = re.search(r"-(\d{3})-[0-9a-f]+$", job_name)
    return int(found.group(1)) if found else place + 1


def record_trials(
    cfg: DictConfig, parent: Optional[Any], tuning: Dict[str, Any], jobs: List[TunedJob], sweep: Optional[str]
) -> List[Any]:
    """An MLflow child run per finished job not recorded yet; every job as a sweep report's ``TrialResult``."""

    keys = swept_keys(tuning)
    children = child_runs(parent, parent.run_id) if parent else []
    recorded = {r.data.tags.get("kx.sagemaker.job_name"): r.info.run_id for r in children}
    results = []
    ordered = sorted(jobs, key=lambda t: t.description["TrainingJobName"])
    for place, tuned in enumerate(ordered):
        job = summary(tuned.description)
        number = trial_number(job["job_name"], place)
        state = tuned.state
        run_id = recorded.get(job["job_name"])
        if parent and run_id is None and state != "RUNNING":
            run_id = record_job(cfg, job, [], parent.run_id, tuned.output, sweep, tuned.model, state)
        results.append(
            TrialResult(
                number=number,
                params={k: job_value(job["hyperparameters"][k]) for k in keys},
                state=state,
                value=tuned.objective if state in ("COMPLETE", EARLY_STOPPED) else None,
                seconds=tuned.description.get("TrainingTimeInSeconds"),
                run_id=run_id,
                output=job["job_name"],
                model=job["model_artifacts"],
                reason=job["failure_reason"],
            )
        )
    return results


def record(
    cfg: DictConfig, tuning: Dict[str, Any], jobs: List[TunedJob], out_dir: Path, sweep: Optional[str] = None
) -> Optional[str]:
    """Log the tuning job and its training jobs (a sweep's trials) to MLflow, print and log the sweep report; return the
    parent run's id (None with tracking off, when only the report is printed)."""

    parent = parent_run(cfg, tuning, sweep) if cfg.tracking.enabled else None
    results = record_trials(cfg, parent, tuning, jobs, sweep)
    best = summarize(parent, goal_of(tuning), results, out_dir, base_overrides(tuning))
    if parent is None:
        return None
    if best is not None:
        parent.set_tags({"kx.best_job_name": best.output})
    status = tuning["HyperParameterTuningJobStatus"]
    parent.set_tags({"kx.sagemaker.status": status})
    if status in PARENT_STATUS:
        parent.end(PARENT_STATUS[status])
    announce(parent, "tuning job")
    return parent.run_id
