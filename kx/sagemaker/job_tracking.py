"""A SageMaker (or rehearsed) training job as an MLflow run that lines up with local runs.

The run carries what a local run of the same config carries: the job's config, composed from its
hyperparameters as train.py composes it inside the job, its hyperparameters as params and the rest
as tags (:mod:`kx.tracking.params`); the per-epoch
``loss``/``acc``/``val_loss``/``val_acc`` curves, ``best_*`` (at the best epoch), ``final_*``,
``best_epoch`` and ``model_val_acc`` from the job's own ``metrics.json``, or, without it, the
job's final metric values under the names of the same meaning. SageMaker's own facts (status,
failure reason, instance type, image, model artifact, billable seconds) come on top.
"""

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.errors import HydraException
from omegaconf import DictConfig

from kx.errors import KxError
from kx.run_config import compose
from kx.sagemaker import script_mode
from kx.sagemaker.job_request import EPOCH_METRICS
from kx.tracking import git_commit, open_run
from kx.tracking.links import announce
from kx.tracking.mlflow_tracker import PARENT_RUN_ENV, config_params
from kx.tracking.params import head, run_name, split

RUN_STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Stopped": "KILLED"}
RUN_FILES = (
    "config.yaml",
    "metrics.json",
    "training_curves.png",
    "confusion_matrix.png",
)  # as kx/pipeline.py


def job_config(hyperparameters: Dict[str, str], sweep: Optional[str] = None) -> Optional[DictConfig]:
    """The config train.py composes in the job from ``hyperparameters`` (plus ``sweep=NAME`` for
    a tuning job's trial, as a local sweep's trials have it); None when train.py would reject them
    (the job failed on them: its run keeps the raw hyperparameters)."""
    argv = [part for key, value in hyperparameters.items() for part in (f"--{key}", value)]
    try:
        overrides = script_mode.hydra_argv(argv, {}, compose) if argv else []
        return compose([*overrides, *([f"sweep={sweep}"] if sweep else [])])
    except (KxError, HydraException):
        return None


def epoch_metrics(metrics: Dict[str, Any]) -> List[Dict[str, Any]]:
    """``metrics.json`` as batches ``{"metrics": {...}, "step": N}``, as pipeline.py logs them."""
    history = metrics.get("history", {})
    epochs = len(next(iter(history.values()), []))
    batches = [{"metrics": {k: v[i] for k, v in history.items()}, "step": i + 1} for i in range(epochs)]
    batches.append(
        {"metrics": {f"best_{k}": v for k, v in metrics["best"].items()}, "step": metrics["best_epoch"]}
    )
    batches.append(
        {"metrics": {f"final_{k}": v for k, v in metrics["final"].items()}, "step": metrics["epochs"]}
    )
    extra = {"best_epoch": metrics["best_epoch"]}
    if "model_val_acc" in metrics:
        extra["model_val_acc"] = metrics["model_val_acc"]
    batches.append({"metrics": extra, "step": 0})
    return batches


def final_metrics(final: Dict[str, float]) -> List[Dict[str, Any]]:
    """A job's final metric values (no ``metrics.json``): a per-epoch regex's last match is the
    last epoch's value, so ``val_acc`` is logged as ``final_val_acc``; ``best_*`` keep their names."""
    renamed = {f"final_{k}" if k in EPOCH_METRICS else k: v for k, v in final.items()}
    return [{"metrics": renamed, "step": 0}] if renamed else []


def job_tags(cfg: DictConfig, job: Dict[str, Any], overrides: List[str]) -> Dict[str, str]:
    hps = job["hyperparameters"]
    tags = {
        **{f"kx.{group}": hps[group] for group in ("backend", "model", "dataset") if group in hps},
        "kx.target": cfg.target.name,
        "kx.overrides": " ".join(overrides),
        "kx.sagemaker.job_name": job["job_name"],
        "kx.sagemaker.status": job["status"],
        "mlflow.source.name": "launch.py",
    }
    for key in ("image", "instance_type", "model_artifacts", "failure_reason"):
        if job.get(key):
            tags[f"kx.sagemaker.{key}"] = str(job[key])
    return tags


def record_job(
    cfg: DictConfig,
    job: Dict[str, Any],
    overrides: List[str],
    parent_run_id: Optional[str] = None,
    output: Optional[Path] = None,
    sweep: Optional[str] = None,
    model: Optional[Path] = None,
    trial_state: Optional[str] = None,
) -> Optional[str]:
    """Log a finished job (:func:`kx.sagemaker.job_watch.summary`'s dict) as one MLflow run; return its id.

    ``output`` holds the job's output data (``metrics.json``...) when it has some, ``model`` its
    model folder when it is here (a rehearsal); ``parent_run_id`` nests the run under a tuning job's,
    whose trial state (``kx.trial.state``, as a local trial's) is ``trial_state``.
    """
    if not cfg.tracking.enabled:
        return None
    run_cfg = job_config(job["hyperparameters"], sweep)
    run = open_run(cfg.tracking)
    params, config_tags = config_params(run_cfg) if run_cfg is not None else split(job["hyperparameters"])
    tags = {**job_tags(cfg, job, overrides), **config_tags, **({"kx.sweep.name": sweep} if sweep else {})}
    if trial_state:
        tags["kx.trial.state"] = trial_state
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    parent = parent_run_id or os.environ.get(PARENT_RUN_ENV)
    name = (
        job["job_name"]
        if parent
        else run_name(*head(run_cfg if run_cfg is not None else cfg), overrides, cfg.target.name)
    )  # trials: as today
    run.start(cfg.tracking.run_name or name, tags, parent, start_time=job.get("started"))
    run.log_params(params)
    files = [output / name for name in RUN_FILES if output and (output / name).is_file()]
    history = output / "metrics.json" if output else None
    metrics = json.loads(history.read_text()) if history and history.is_file() else None
    for batch in epoch_metrics(metrics) if metrics else final_metrics(job["final_metrics"]):
        run.log_metrics(batch["metrics"], step=batch["step"])
    if job.get("billable_seconds") is not None:
        run.log_metrics({"billable_seconds": job["billable_seconds"]})
    run.log_artifacts(files + ([model] if model and model.is_dir() else []))
    run.end(RUN_STATUS.get(job["status"], "FAILED"), end_time=job.get("ended"))
    if not parent:
        announce(run, "job")  # a tuning job's trials: its own link comes last
    return run.run_id
