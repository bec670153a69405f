"""``launch.py status|stop|results JOB``: a training or tuning job by its name."""

import sys
from typing import Any, Dict

from omegaconf import DictConfig

from kx.errors import KxError
from kx.sagemaker.job_watch import status_line
from kx.sagemaker.tuning_jobs import results as tuning_results
from kx.sagemaker.tuning_jobs import status_line as tuning_status_line


class NoSuchJob(KxError):
    """No training or tuning job has the name given."""


def missing(err: Exception) -> bool:
    """True for the API's answer to an unknown job name (ResourceNotFound, or for training jobs a
    ValidationException "Requested resource not found")."""
    error = getattr(err, "response", {}).get("Error", {})
    message = str(error.get("Message", "")).lower()
    return error.get("Code") == "ResourceNotFound" or (
        error.get("Code") == "ValidationException" and ("not found" in message or "could not find" in message)
    )


def find(sm: Any, name: str) -> Dict[str, Any]:
    """``{"kind": "tuning"|"training", "description": ...}`` for the job called ``name``."""
    for kind, call, key in (
        ("tuning", sm.describe_hyper_parameter_tuning_job, "HyperParameterTuningJobName"),
        ("training", sm.describe_training_job, "TrainingJobName"),
    ):
        try:
            return {"kind": kind, "description": call(**{key: name})}
        except sm.exceptions.ClientError as err:
            if not missing(err):
                raise
    raise NoSuchJob(
        f"No training or tuning job named {name!r} in this region; list them with "
        "`aws sagemaker list-training-jobs` or `aws sagemaker list-hyper-parameter-tuning-jobs`."
    )


def status(sm: Any, name: str) -> int:
    """Print the job's state (a tuning job's trial counts and best objective; a training job's metrics)."""

    job = find(sm, name)
    description = job["description"]
    if job["kind"] == "tuning":
        print(tuning_status_line(description))
        return 0
    print(status_line(description, 0.0).rsplit(" (", 1)[0])
    for metric in description.get("FinalMetricDataList", []):
        print(f"{metric['MetricName']}={metric['Value']:.4f}")
    return 0


def stop(sm: Any, name: str) -> int:
    """Stop a running training or tuning job (a tuning job stops its running trials too)."""
    job = find(sm, name)
    state = job["description"].get("HyperParameterTuningJobStatus") or job["description"]["TrainingJobStatus"]
    if state not in ("InProgress",):
        print(f"{job['kind']} job {name} is {state}: nothing to stop.", file=sys.stderr)
        return 0
    if job["kind"] == "tuning":
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    else:
        sm.stop_training_job(TrainingJobName=name)
    print(
        f"stopping {job['kind']} job {name}; `python launch.py status {name}` shows when it has stopped.",
        file=sys.stderr,
    )
    return 0


def results(cfg: DictConfig, sm: Any, s3: Any, name: str) -> int:
    """Log a tuning job's trials to MLflow (any number of times: each run adds only what is new)."""

    job = find(sm, name)
    if job["kind"] != "tuning":
        raise KxError(
            f"{name} is a training job: `launch.py results` takes a tuning job; a training job "
            "is logged to MLflow when launch.py waits for it."
        )
    return tuning_results(cfg, sm, s3, name)
