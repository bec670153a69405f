"""A sweep in MLflow: one parent run per study (the same one when the sweep resumes, shared by
every worker), a child run per trial.

Each trial's process opens its own child run (named by the sweeper, see :mod:`kx.sweep.trial`);
the sweep then records the trial's state and reason on it and ends it with the true status when
the process could not (killed, crashed before tracking started: then the sweep creates it).
"""

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig

from kx.errors import KxError
from kx.sweep.plan import SweepPlan
from kx.sweep.report import TrialResult
from kx.sweep.study import PARENT_RUN_ATTR, claim
from kx.tracking import MLflowRun, open_run
from kx.tracking.liveness import KILLED_TAG, process_tags
from kx.tracking.mlflow_tracker import PARENT_RUN_ENV

CLAIM_WAIT_S = 120.0  # how long a worker waits for the parent run another worker claimed
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED", "KILLED": "KILLED"}


def open_parent(cfg: DictConfig, plan: SweepPlan, study: Any, out_dir: Path) -> Optional[MLflowRun]:
    """The study's one parent run in this store: joined when the study has it (resumed, or created
    by another worker), else created by the one worker that claims it while the others wait for
    it. None untracked."""
    if not cfg.tracking.enabled:
        return None
    run = open_run(cfg.tracking)
    deadline = time.monotonic() + CLAIM_WAIT_S
    while True:
        previous = study.user_attrs.get(PARENT_RUN_ATTR)
        if previous and _exists(run, previous):
            run.run_id = previous
            own_parent(run)
            return run
        if claim(plan, f"{plan.study}:mlflow-parent-after:{previous or 'none'}"):
            break
        if time.monotonic() > deadline:
            raise KxError(
                f"Another worker of study {plan.study!r} claimed its MLflow parent run but did "
                "not create it; rerun the command."
            )
        time.sleep(0.5)
    tags = {
        "kx.sweep": "true",
        "kx.sweeper": "kx",
        "kx.sweep.study": plan.study,
        "kx.sweep.storage": plan.storage,
        "kx.sweep.sampler": plan.sampler,
        "kx.sweep.pruner": plan.pruner,
        "kx.overrides": " ".join(plan.base_overrides),
        "kx.output_dir": str(out_dir.resolve()),
        "mlflow.source.name": "train.py",
    }
    tags.update({f"kx.sweep.space.{p.key}": p.expression for p in plan.space})
    run.start(cfg.tracking.run_name or f"sweep {plan.name}"[:250], tags, parent_run_id=None)
    study.set_user_attr(PARENT_RUN_ATTR, run.run_id)
    return run


def own_parent(parent: MLflowRun, owner: Optional[Dict[str, str]] = None) -> None:
    """Make the parent RUNNING and owned by this process (or ``owner``, another worker's process
    tags), so that kx's liveness check follows the worker that runs the sweep now."""
    from mlflow.entities import RunTag

    found = parent.client.get_run(parent.run_id)
    tags = owner or process_tags()
    if found.info.status != "RUNNING":
        parent.client.update_run(parent.run_id, status="RUNNING")
    if KILLED_TAG in found.data.tags:
        parent.client.delete_tag(parent.run_id, KILLED_TAG)
    if any(found.data.tags.get(k) != v for k, v in tags.items()):
        parent.client.log_batch(parent.run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def _exists(run: MLflowRun, run_id: str) -> bool:
    try:
        return run.client.get_run(run_id).info.experiment_id == run.experiment_id
    except Exception:  # noqa: BLE001 - MLflow raises MlflowException for an unknown id
        return False


def children(parent: MLflowRun, number: Optional[int] = None) -> List[Any]:
    """The parent's child runs (only trial ``number``'s when given)."""
    query = f"tags.mlflow.parentRunId = '{parent.run_id}'"
    if number is not None:
        query += f" and tags.`kx.trial.number` = '{number}'"
    return parent.client.search_runs([parent.experiment_id], filter_string=query)


def record_child(
    parent: MLflowRun, trial: TrialResult, run_name: str, metric: str, status: Optional[str] = None
) -> Optional[str]:
    """Tag trial ``trial``'s child run with its state (and reason), end it with ``status`` (from the
    state by default) when it is still running; create it when the trial never opened it. A
    completed trial's objective (``best_<metric>``) is logged when the trial's own logging failed."""
    status = status or STATUS[trial.state]
    tags: Dict[str, str] = {"kx.trial.state": trial.state}
    if trial.reason:
        tags["kx.trial.reason"] = trial.reason[:5000]
    found = children(parent, trial.number)
    if not found:
        child = MLflowRun(parent.uri, parent.client.get_experiment(parent.experiment_id).name)
        tags.update({"kx.trial.number": str(trial.number), "kx.output_dir": str(trial.output or "")})
        child.start(run_name, tags, parent.run_id)
        child.log_params({key: str(value) for key, value in trial.params.items()})
        child.end(status)
        return child.run_id
    run, client = found[0], parent.client
    for key, value in tags.items():
        client.set_tag(run.info.run_id, key, value)
    if trial.value is not None and f"best_{metric}" not in run.data.metrics:
        client.log_metric(run.info.run_id, f"best_{metric}", trial.value)
    if run.info.status == "RUNNING" or trial.state != "COMPLETE":
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def trial_run_name(number: int, params: Dict[str, Any]) -> str:
    """``trial 3: learning_rate=0.0123 dense_units=64`` (the last part of each key)."""
    parts = [
        f"{key.rsplit('.', 1)[-1]}={value:.4g}"
        if isinstance(value, float)
        else f"{key.rsplit('.', 1)[-1]}={value}"
        for key, value in params.items()
    ]
    return f"trial {number}: " + " ".join(parts) if parts else f"trial {number}"


def parent_env(parent: Optional[MLflowRun]) -> Dict[str, str]:
    """What nests a trial's run under the sweep's parent run."""

    return {PARENT_RUN_ENV: parent.run_id} if parent and parent.run_id else {}


def clean_env() -> Dict[str, str]:
    """The sweep's environment for its trials, less what would nest a trial elsewhere (mlflow#15713)."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID" and not k.startswith("KX_SWEEP_")}
