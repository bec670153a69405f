"""Experiment tracking with MLflow: a run per training job, a parent run per sweep."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from kx.sweep.trial import run_identity
from kx.tracking.mlflow_tracker import (
    PARENT_RUN_ENV,
    MLflowRun,
    TrackingError,
    flatten,
    resolve_uri,
)

__all__ = ["MLflowRun", "TrackingError", "open_run", "record_job", "start_training_run"]

PROJECT_DIR = Path(__file__).resolve().parents[2]


def git_commit(folder: Path = PROJECT_DIR) -> Optional[str]:
    """The commit checked out in ``folder``, or None outside a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def open_run(tracking: DictConfig) -> MLflowRun:
    """Connect to the configured store; any failure becomes one :class:`TrackingError` line."""
    uri = resolve_uri(tracking.uri)
    if not tracking.mlflow_telemetry:  # MLflow's usage telemetry; an explicit env var still wins
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        return MLflowRun(uri, tracking.experiment)
    except TrackingError:
        raise
    except Exception as err:  # noqa: BLE001 - e.g. an unwritable SQLite path or a bad URI scheme
        raise TrackingError(
            f"Cannot open MLflow tracking store tracking.uri={uri!r} "
            f"({type(err).__name__}: {err}). Fix tracking.uri or set "
            "tracking.enabled=false."
        ) from None


def start_training_run(cfg: DictConfig, overrides: List[str], out_dir: Path) -> Optional[MLflowRun]:
    """Open an MLflow run for one training job (nested under a sweep's run when there is one)."""
    if not cfg.tracking.enabled:
        return None
    run = open_run(cfg.tracking)
    tags: Dict[str, str] = {
        "kx.backend": cfg.backend.name,
        "kx.model": cfg.model.name,
        "kx.dataset": cfg.dataset.name,
        "kx.target": cfg.target.name,
        "kx.overrides": " ".join(overrides),
        "kx.output_dir": str(out_dir),
        "kx.version.python": sys.version.split()[0],
        "mlflow.source.name": "train.py",
        "mlflow.source.type": "LOCAL",
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    trial_name, trial_tags = run_identity()  # a sweep's trial: named after its number and overrides
    run.start(cfg.tracking.run_name or trial_name, {**tags, **trial_tags}, os.environ.get(PARENT_RUN_ENV))
    params = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    run.log_params(flatten(params))
    return run


def record_job(cfg: DictConfig, job: Dict[str, Any], overrides: List[str]) -> Optional[str]:
    """Log a finished SageMaker (or rehearsed) training job as one MLflow run; return its id.

    ``job`` is :func:`kx.sagemaker.jobs.summary`'s dict: hyperparameters become params, the job's
    final metrics (the best epoch's, see train.py's log lines) become metrics, the rest tags.
    """
    if not cfg.tracking.enabled:
        return None
    run = open_run(cfg.tracking)
    tags = {
        "kx.backend": cfg.backend.name,
        "kx.model": cfg.model.name,
        "kx.dataset": cfg.dataset.name,
        "kx.target": cfg.target.name,
        "kx.overrides": " ".join(overrides),
        "kx.sagemaker.job_name": job["job_name"],
        "kx.sagemaker.status": job["status"],
        "mlflow.source.name": "launch.py",
    }
    tags.update({f"kx.sagemaker.{k}": str(job[k]) for k in ("image", "instance_type", "model_artifacts",
                                                             "failure_reason") if job.get(k)})  # fmt: skip
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    run.start(cfg.tracking.run_name or job["job_name"], tags, os.environ.get(PARENT_RUN_ENV))
    run.log_params(job["hyperparameters"])
    metrics = dict(job["final_metrics"])
    if job.get("billable_seconds") is not None:
        metrics["billable_seconds"] = job["billable_seconds"]
    run.log_metrics(metrics)
    run.end("FINISHED" if job["status"] == "Completed" else "FAILED")
    return run.run_id
