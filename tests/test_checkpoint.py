"""Spot-style interruption: SIGTERM mid-run keeps the last epoch's checkpoint; a rerun resumes."""

import importlib.util
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["tensorflow", "mxnet"])
def test_sigterm_then_rerun_resumes_and_finishes_with_a_complete_model(backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    args = [
        sys.executable,
        str(PROJECT_DIR / "train.py"),
        f"backend={backend}",
        "dataset=synthetic",
        "dataset.train_samples=3000",
        "train.epochs=6",
        "train.early_stopping.enabled=false",
        "train.checkpoint_dir=checkpoints",
        "hydra.run.dir=run",
        "tracking.enabled=false",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen = []
    for line in first.stdout:
        seen.append(line)
        if "] - epoch=2 " in line:
            first.send_signal(signal.SIGTERM)
            break
    out, err = first.communicate(timeout=300)
    assert first.returncode == 2, err
    assert "kx: error: Training stopped by SIGTERM after epoch" in err and "Traceback" not in err
    done = json.loads((tmp_path / "checkpoints" / "last" / "monitor.json").read_text())
    completed = len(done["history"]["val_acc"])
    assert 2 <= completed < 6
    kept = json.loads((tmp_path / "run" / "metrics.json").read_text())  # the completed epochs' results
    assert kept["epochs"] == completed and kept["history"]["val_acc"] == done["history"]["val_acc"]

    second = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"resuming from the checkpoint in checkpoints/last after epoch {completed}" in second.stdout
    epochs = [
        int(line.split("] - epoch=")[1].split()[0])
        for line in second.stdout.splitlines()
        if "] - epoch=" in line
    ]
    assert epochs == list(range(completed + 1, 7))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == 6 and metrics["history"]["val_acc"][:completed] == done["history"]["val_acc"]
    # the weights were restored, not re-initialised: the first resumed epoch trains like a late one
    assert metrics["history"]["loss"][completed] < 0.5 * metrics["history"]["loss"][0]
    model = tmp_path / "run" / "model"
    assert (model / "model-symbol.json").is_file() if backend == "mxnet" else (model / "model" / "1").is_dir()
