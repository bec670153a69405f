"""Experiment tracking with MLflow: a run per training job, a parent run per sweep."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from omegaconf import DictConfig

from kx import process
from kx.errors import KxError
from kx.tracking import resume
from kx.tracking.liveness import close_orphaned_runs
from kx.tracking.mlflow_tracker import (
    PARENT_RUN_ENV,
    MLflowRun,
    TrackingError,
    config_params,
    resolve_uri,
)
from kx.tracking.params import head, run_name
from kx.tracking.secrets import redact
from kx.tracking.store_lock import sqlite_turn

__all__ = ["MLflowRun", "TrackingError", "open_run", "start_training_run"]

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
    process.mlflow_telemetry(tracking.mlflow_telemetry)  # before MLflow's first request
    check_sqlite_writable(uri)
    try:
        run = _connect(uri, tracking.experiment)
    except TrackingError:
        raise
    except Exception as err:  # noqa: BLE001 - e.g. an unwritable SQLite path or a bad URI scheme
        raise TrackingError(
            f"Cannot open MLflow tracking store tracking.uri={redact(uri)!r} "
            f"({type(err).__name__}: {redact(str(err))}). Fix tracking.uri or set "
            "tracking.enabled=false."
        ) from None
    close_orphaned_runs(run)
    return run


def _connect(uri: str, experiment: str) -> MLflowRun:
    """The store's experiment, created if need be; processes opening a new store take turns."""
    with sqlite_turn(uri):
        return MLflowRun(uri, experiment)


def start_training_run(
    cfg: DictConfig,
    overrides: List[str],
    out_dir: Path,
    identity: Tuple[Optional[str], Dict[str, str]] = (None, {}),
) -> Optional[MLflowRun]:
    """Open an MLflow run for one training job (nested under a sweep's run when there is one);
    ``identity``: a sweep's trial's run name and tags (:func:`kx.sweep.trial.run_identity`)."""
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
    if cfg.get("sweep"):
        tags["kx.sweep.name"] = cfg.sweep.name
    params, config_tags = config_params(cfg)
    tags.update(config_tags)
    try:
        _start_or_resume(run, cfg, params, tags, overrides, identity)
    except KxError:
        raise
    except Exception as err:  # noqa: BLE001 - a store that reads but cannot be written (read-only, full)
        run.end("FAILED")  # a run that was started or reopened does not stay RUNNING
        raise unwritable(run.uri, root_cause(err)) from None
    return run


def root_cause(err: BaseException) -> BaseException:
    """The innermost exception behind ``err`` (sqlite3's own, say, under SQLAlchemy's and MLflow's)."""
    while err.__cause__ or err.__context__:
        err = err.__cause__ or err.__context__
    return err


def unwritable(uri: str, err: BaseException) -> TrackingError:
    reason = (str(err).strip().splitlines() or [""])[0]
    return TrackingError(
        f"Cannot write to MLflow tracking store tracking.uri={redact(uri)!r} "
        f"({type(err).__name__}: {redact(reason)}); make it writable or set "
        "tracking.enabled=false."
    )


def check_sqlite_writable(uri: str) -> None:
    """Refuse an existing SQLite store this process cannot write (read-only or immutable file) before
    MLflow tries, and logs a traceback of its own."""
    path = Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None
    if path is None or not path.is_file():
        return
    try:
        with path.open("ab"):
            pass
    except OSError as err:
        raise unwritable(uri, err) from None


def _start_or_resume(
    run: MLflowRun,
    cfg: DictConfig,
    params: Dict[str, str],
    tags: Dict[str, str],
    overrides: List[str],
    identity: Tuple[Optional[str], Dict[str, str]],
) -> None:
    """Reopen the run the checkpoints belong to, or start a new one and note it beside them."""
    resumed = resume.resumable(cfg.train.checkpoint_dir, run)
    if resumed:
        resume.reopen(run, resumed, params, tags)
        return
    trial_name, trial_tags = identity  # a sweep's trial: named after its number and overrides
    name = cfg.tracking.run_name or trial_name or run_name(*head(cfg), overrides)
    run.start(name, {**tags, **trial_tags}, os.environ.get(PARENT_RUN_ENV))
    run.log_params(params)
    resume.remember(cfg.train.checkpoint_dir, run)
