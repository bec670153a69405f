"""Links that open a run in the MLflow UI's training view (not its GenAI pages)."""

import json
import logging
from typing import Sequence
from urllib.parse import quote

from kx.tracking.mlflow_tracker import MLflowRun
from kx.tracking.secrets import without_credentials

log = logging.getLogger("kx")

LOCAL_UI = "http://127.0.0.1:5000"
TRAINING_VIEW = "workflowType=machine_learning"


def _ui(uri: str) -> str:
    """The UI's address: a tracking server's own, else ``launch.py ui --port 5000``'s."""
    return without_credentials(uri).rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI


def experiment_link(uri: str, experiment_id: str) -> str:
    """The experiment's runs table in the training view."""
    return f"{_ui(uri)}/#/experiments/{experiment_id}/runs?{TRAINING_VIEW}"


def compare_link(experiment_id: str, run_ids: Sequence[str]) -> str:
    """MLflow's comparison page of ``run_ids``, relative to the UI's address (any host)."""
    runs = quote(json.dumps(list(run_ids), separators=(",", ":")), safe="")
    experiments = quote(json.dumps([experiment_id]), safe="")
    return f"#/compare-runs?runs={runs}&experiments={experiments}&{TRAINING_VIEW}"


def run_link(uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page; for a local store, on ``launch.py ui --port 5000``'s address."""
    return f"{_ui(uri)}/#/experiments/{experiment_id}/runs/{run_id}?{TRAINING_VIEW}"


def announce(run: MLflowRun, what: str = "run") -> None:
    """Log the link that opens ``run``, with the command that serves a local store."""
    if run.run_id is None or run.failed:
        return
    log.info("MLflow %s: %s", what, run_link(run.uri, run.experiment_id, run.run_id))
    if not run.uri.startswith(("http://", "https://")):
        log.info("  (serve it with: python launch.py ui --port 5000 tracking.uri=%s)", run.uri)
