"""Helpers for sweep tests: a sweep's MLflow parent and children, its Optuna study, a sweep process."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, List, Sequence, Tuple

PROJECT_DIR = Path(__file__).resolve().parents[2]

# A trial in a few seconds: a small MLP on small synthetic images, PyTorch (no SavedModel export).
TINY = [
    "backend=torch",
    "model=mlp",
    "model.dense_units=16",
    "dataset=synthetic",
    "dataset.train_samples=200",
    "dataset.validation_samples=100",
    "dataset.image_size=[8,8]",
    "train.epochs=1",
    "train.batch_size=50",
]


def mlflow_client(folder: Path) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def sweep_runs(folder: Path) -> Tuple[Any, List[Any]]:
    """The one parent run in ``folder``'s store and its children, by trial number."""
    client = mlflow_client(folder)
    experiment = client.get_experiment_by_name("kx")
    found = client.search_runs([experiment.experiment_id])
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], sorted(children, key=lambda r: int(r.data.tags["kx.trial.number"]))


def study(folder: Path, name: str) -> Any:
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'sweeps.db'}")


def start_train(cwd: Path, *args: str) -> subprocess.Popen:
    """Start ``python train.py ARGS`` in ``cwd`` (as tests.conftest.train runs it) without waiting."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    env = {k: v for k, v in env.items() if not k.startswith("KX_")}
    return subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "train.py"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_enabled,
    )


def _ctrl_c_enabled() -> None:  # runs in the child between fork and exec
    """SIGINT back to its default: a test run started in the background (``pytest &``) ignores it, and
    its children would inherit that, so a Ctrl-C test could not interrupt them."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(condition: Callable[[], bool], timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(1.0)


def assert_sweep_structure(folder: Path, numbers: Sequence[int]) -> Tuple[Any, List[Any]]:
    """What every finished sweep shows in MLflow, however its trials ran: one parent run, FINISHED,
    with a child per trial, named after the trial, tagged with its state, the best child on the parent."""
    parent, children = sweep_runs(folder)
    assert parent.info.status == "FINISHED"
    assert [int(c.data.tags["kx.trial.number"]) for c in children] == list(numbers)
    for child in children:
        number = child.data.tags["kx.trial.number"]
        assert child.info.run_name.startswith(f"trial {number}"), child.info.run_name
        state = child.data.tags["kx.trial.state"]
        assert (
            child.info.status in {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED KILLED"}[state]
        )
    complete = [c for c in children if c.data.tags["kx.trial.state"] == "COMPLETE"]
    assert parent.data.metrics["trials_complete"] == len(complete)
    if complete:
        best = max(complete, key=lambda c: c.data.metrics["best_val_acc"])
        assert parent.data.metrics["best_val_acc"] == best.data.metrics["best_val_acc"]
        assert parent.data.tags["kx.best_run_id"] == best.info.run_id
    return parent, children
