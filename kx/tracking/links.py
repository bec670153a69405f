"""Links that open a run in the MLflow UI's training view (not its GenAI pages)."""

import logging

from kx.tracking.mlflow_tracker import MLflowRun
from kx.tracking.secrets import without_credentials

log = logging.getLogger("kx")

LOCAL_UI = "http://127.0.0.1:5000"


def run_link(uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page; for a local store, on ``mlflow ui``'s default address."""
    base = without_credentials(uri).rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def announce(run: MLflowRun, what: str = "run") -> None:
    """Log the link that opens ``run``, with the command that serves a local store."""
    if run.run_id is None or run.failed:
        return
    log.info("MLflow %s: %s", what, run_link(run.uri, run.experiment_id, run.run_id))
    if not run.uri.startswith(("http://", "https://")):
        log.info("  (serve it with: mlflow ui --backend-store-uri %s --port 5000)", run.uri)
