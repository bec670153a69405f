"""A resumed training run continues its MLflow run, so the run's history is whole.

The run's id is kept beside the checkpoints (``<train.checkpoint_dir>/mlflow_run.json``); a rerun
that resumes from those checkpoints reopens that run in the same store. Runs inside SageMaker
jobs: Python 3.8 syntax.
"""

import json
from pathlib import Path
from typing import Dict, Optional

from kx.backends.checkpoint import Checkpoint
from kx.errors import KxError
from kx.tracking.liveness import KILLED_TAG, PID_TAG, owner_alive, process_tags
from kx.tracking.mlflow_tracker import MLflowRun
from kx.tracking.secrets import redact

RUN_FILE = "mlflow_run.json"


def remember(folder: Optional[str], run: MLflowRun) -> None:
    """Note ``run``'s id in the checkpoint folder (when checkpoints are on)."""
    if folder and run.run_id:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / RUN_FILE).write_text(
            json.dumps({"run_id": run.run_id, "experiment_id": run.experiment_id})
        )


def resumable(folder: Optional[str], run: MLflowRun) -> Optional[str]:
    """The id of the run that the checkpoints in ``folder`` belong to, when it is in ``run``'s store.

    A run whose owner still runs on this host is refused first, before anything in the folder is
    touched: two processes would train into one folder. Then a checkpoint left by a save that was
    stopped midway counts (:meth:`Checkpoint.recover`)."""
    if not folder:
        return None
    try:
        noted = json.loads((Path(folder) / RUN_FILE).read_text())
        found = run.client.get_run(noted["run_id"])
    except Exception:  # noqa: BLE001 - no note, or a run of another store: start a new run
        return None
    if found.info.status == "RUNNING" and owner_alive(found.data.tags):
        raise KxError(
            f"train.checkpoint_dir={folder} belongs to MLflow run {found.info.run_id}, still "
            f"training in process {found.data.tags.get(PID_TAG)}; wait for it, stop it, or choose "
            "another train.checkpoint_dir."
        )
    if found.info.experiment_id != run.experiment_id or not Checkpoint(folder).exists():
        return None
    return found.info.run_id


def reopen(run: MLflowRun, run_id: str, params: Dict[str, str], tags: Dict[str, str]) -> None:
    """Continue ``run_id`` from this process: RUNNING again, owned by this process, with this
    process's output folder and command line (``kx.resumed_overrides``) and any new params (MLflow
    params cannot change)."""
    from mlflow.entities import RunTag

    run.run_id = run_id
    found = run.client.get_run(run_id).data
    run.client.update_run(run_id, status="RUNNING")
    if KILLED_TAG in found.tags:
        run.client.delete_tag(run_id, KILLED_TAG)
    tags = {
        **process_tags(),
        "kx.output_dir": tags["kx.output_dir"],
        "kx.resumed_overrides": tags["kx.overrides"],
    }
    run.client.log_batch(run_id, tags=[RunTag(k, redact(v)) for k, v in tags.items()])
    run.log_params({k: v for k, v in params.items() if k not in found.params})
