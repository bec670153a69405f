"""Everything kx sends to MLflow: one run per training job, nested under a sweep's parent run.

MLflow is imported only when tracking is on. A server that cannot be reached fails the run at
start-up; a failure later on (server gone mid-run) is reported once and the run goes on, because
its results are already in the run's output folder.
"""

import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from kx.config.keys import flatten
from kx.errors import KxError
from kx.tracking.liveness import process_tags
from kx.tracking.params import split
from kx.tracking.secrets import redact, without_credentials

log = logging.getLogger("kx")

PARENT_RUN_ENV = "KX_MLFLOW_PARENT_RUN_ID"  # set for its trials by the sweep (kx/sweep/runs.py)


class TrackingError(KxError):
    """MLflow cannot be used as configured; the message says how to fix or disable tracking."""


def resolve_uri(uri: Optional[str]) -> str:
    """``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite file in the working folder."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, with advice, when an ``http(s)://`` tracking server does not answer ``/health``."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{without_credentials(uri).rstrip('/')}/health", timeout=timeout):
            pass
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(
            f"MLflow tracking server tracking.uri={redact(uri)!r} is unreachable ({reason}). Start it "
            "(e.g. `mlflow server --host 127.0.0.1 --port 5000`), point tracking.uri at a running "
            "server or a sqlite:/// file, or turn tracking off with tracking.enabled=false."
        ) from None


def config_params(cfg: Any) -> Tuple[Dict[str, str], Dict[str, str]]:
    """A composed config as a run's params (its hyperparameters, flattened: ``train.epochs``...) and
    tags (the rest: folders, URIs, how it runs; :mod:`kx.tracking.params`)."""
    from omegaconf import OmegaConf

    return split(flatten(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)))


class MLflowRun:
    """One MLflow run, driven through ``MlflowClient`` so no global "active run" state is involved."""

    def __init__(self, uri: str, experiment: str) -> None:
        check_reachable(uri)
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.run_id: Optional[str] = None
        self.failed = False

    def start(
        self,
        run_name: Optional[str],
        tags: Dict[str, str],
        parent_run_id: Optional[str],
        start_time: Optional[int] = None,
    ) -> str:
        """Create the run (``start_time`` in epoch milliseconds: when it really began, else now)."""
        if parent_run_id:
            tags = {**tags, "mlflow.parentRunId": parent_run_id}
        tags = {k: redact(v) for k, v in {**process_tags(), **tags}.items()}
        run = self.client.create_run(self.experiment_id, start_time=start_time, run_name=run_name, tags=tags)
        self.run_id = run.info.run_id
        return self.run_id

    def _guard(self, action: str, fn: Any, *args: Any) -> None:
        """Run one MLflow call; on the first failure warn once and stop tracking this run."""
        if self.failed or self.run_id is None:
            return
        try:
            fn(*args)
        except Exception as err:  # noqa: BLE001 - tracking must never lose a run's results
            self.failed = True
            log.warning(
                "MLflow tracking failed while %s (%s: %s); tracking stops for this run, its "
                "results stay in the run's output folder.",
                action,
                type(err).__name__,
                err,
            )

    def log_params(self, params: Dict[str, str]) -> None:
        from mlflow.entities import Param

        entries = [Param(k[:250], redact(v)[:6000]) for k, v in params.items()]
        # MlflowClient.log_batch splits them into batches the store accepts
        self._guard("logging params", self.client.log_batch, self.run_id, [], entries)

    def set_tags(self, tags: Dict[str, str]) -> None:
        from mlflow.entities import RunTag

        entries = [RunTag(k, redact(v)) for k, v in tags.items()]
        self._guard("setting tags", self.client.log_batch, self.run_id, [], [], entries)

    def log_metrics(self, metrics: Dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self._guard("logging metrics", self.client.log_batch, self.run_id, entries)

    def log_artifacts(self, paths: Iterable[Path], artifact_path: Optional[str] = None) -> None:
        for path in paths:
            if path.is_dir():
                sub = path.name if artifact_path is None else f"{artifact_path}/{path.name}"
                self._guard(f"uploading {path}", self.client.log_artifacts, self.run_id, str(path), sub)
            elif path.is_file():
                self._guard(
                    f"uploading {path}", self.client.log_artifact, self.run_id, str(path), artifact_path
                )

    def end(self, status: str = "FINISHED", end_time: Optional[int] = None) -> None:
        """End the run with ``status`` (``end_time`` in epoch milliseconds: when it really ended, else now)."""
        self._guard("ending the run", self.client.set_terminated, self.run_id, status, end_time)


def child_runs(run: MLflowRun, parent_run_id: str) -> List[Any]:
    """The runs nested under ``parent_run_id`` in ``run``'s experiment."""
    return run.client.search_runs(
        [run.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
