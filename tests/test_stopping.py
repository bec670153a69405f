"""Ctrl-C, SIGTERM and kill -9 through the real train.py: one line, the true MLflow status, nothing lost."""

import json
import signal
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from kx.tracking import open_run
from kx.tracking.liveness import HOST_TAG, PID_TAG
from tests.conftest import PROJECT_DIR, train
from tests.helpers.processes import busy, kx_lines, start_train, stop_after_epoch

pytestmark = pytest.mark.slow

# about a second per epoch: a signal lands mid-epoch, not between runs
RUN = [
    "model=mlp",
    "dataset=synthetic",
    "dataset.train_samples=12000",
    "train.epochs=30",
    "train.early_stopping.enabled=false",
    "hydra.run.dir=run",
]


def mlflow_runs(folder):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    return client, client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_ctrl_c_stops_within_seconds_with_one_line_and_keeps_the_completed_epochs(tmp_path):
    out, err, seconds = stop_after_epoch(start_train(tmp_path, *RUN), 2, signal.SIGINT)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    done = metrics["epochs"]
    assert kx_lines(err) == [
        f"kx: error: Training stopped by SIGINT after epoch {done}; metrics.json, training_curves.png and the "
        f"best epoch's ({metrics['best_epoch']}) model are in {run}; set train.checkpoint_dir to make runs resumable."
    ]
    assert "Traceback" not in err + out and seconds < 20 * busy(), seconds
    assert done >= 2 and metrics["stopped_after_epoch"] == done and len(metrics["history"]["val_acc"]) == done
    assert (run / "training_curves.png").is_file() and (run / "model" / "model" / "1").is_dir()
    client, (found,) = mlflow_runs(tmp_path)
    assert found.info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(found.info.run_id, "val_acc")] == list(
        range(1, done + 1)
    )
    assert found.data.metrics["best_val_acc"] == metrics["best"]["val_acc"]


def test_sigterm_without_checkpoints_says_so_and_exits_2(tmp_path):
    proc = start_train(tmp_path, *RUN, "tracking.enabled=false")
    out, err, seconds = stop_after_epoch(proc, 1, signal.SIGTERM)
    assert proc.returncode == 2 and seconds < 20 * busy(), seconds
    (line,) = kx_lines(err)
    assert line.startswith("kx: error: Training stopped by SIGTERM after epoch ")
    assert line.endswith("set train.checkpoint_dir to make runs resumable.")
    assert "SIGTERM received: stopped after the batch; the 1 completed epochs are kept" in out
    assert "checkpoint is kept" not in out


def test_kill_9_then_resume_continues_the_same_mlflow_run(tmp_path):
    args = [*RUN[:3], "train.epochs=4", *RUN[4:], "train.checkpoint_dir=ckpt"]
    first = start_train(tmp_path, *args)
    stop_after_epoch(first, 2, signal.SIGKILL)
    client, (killed,) = mlflow_runs(tmp_path)
    assert killed.info.status == "RUNNING" and killed.data.tags[PID_TAG] == str(first.pid)

    resumed = train(tmp_path, *args, "hydra.run.dir=resumed")
    assert resumed.returncode == 0, resumed.stderr
    assert f"marked 1 run(s) KILLED whose process is gone: {killed.info.run_id}" in resumed.stdout
    client, (run,) = mlflow_runs(tmp_path)  # the same run, not a second one
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == [1, 2, 3, 4]
    assert run.data.tags["kx.output_dir"] == str(tmp_path / "resumed") and "kx.killed" not in run.data.tags
    assert (
        run.data.metrics["final_val_acc"]
        == json.loads((tmp_path / "resumed" / "metrics.json").read_text())["final"]["val_acc"]
    )


def test_a_sweep_parent_whose_process_died_is_marked_killed(tmp_path):
    """A parent run (as the sweep engineer creates it through kx.tracking) left RUNNING by kill -9."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = (
        "import os, signal; from omegaconf import OmegaConf; from kx.tracking import open_run; "
        f"run = open_run(OmegaConf.create({{'uri': '{uri}', 'experiment': 'kx', 'mlflow_telemetry': False}})); "
        "run.start('sweep 12-00-00', {'kx.sweep': 'true'}, None); os.kill(os.getpid(), signal.SIGKILL)"
    )
    dead = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True)
    assert dead.returncode == -signal.SIGKILL, dead.stderr
    client, (parent,) = mlflow_runs(tmp_path)
    assert parent.info.status == "RUNNING" and parent.data.tags[HOST_TAG]

    open_run(
        OmegaConf.create({"uri": uri, "experiment": "other", "mlflow_telemetry": False})
    )  # kx touches the store
    assert client.get_run(parent.info.run_id).info.status == "KILLED"
    assert client.get_run(parent.info.run_id).data.tags["kx.killed"].startswith("its process ")
