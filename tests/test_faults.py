"""Faults an operator meets, each injected for real: one ``kx: error:`` line, exit 2, the MLflow run
ended with its true state, nothing lost, and no password written anywhere (issue 20)."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from kx.config import ConfigError, validate
from tests.conftest import PROJECT_DIR
from tests.helpers.mlflow_server import mlflow_server
from tests.helpers.processes import kx_lines

SECRET = "s3cretPW"
TINY = ["model=mlp", "dataset=digits", "train.epochs=1"]


def train_env(**extra: str) -> Dict[str, str]:
    """This environment without kx's or MLflow's store settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KX_", "MLFLOW_TRACKING", "MLFLOW_RUN"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def run_train(
    cwd: Path, *args: str, env: Dict[str, str] = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` in ``cwd`` to completion."""
    cmd = [sys.executable, str(PROJECT_DIR / "train.py"), *args]
    return subprocess.run(
        cmd, cwd=cwd, env=env or train_env(), capture_output=True, text=True, timeout=timeout
    )


def one_error(proc: subprocess.CompletedProcess) -> str:
    """The single ``kx: error:`` line of a run that failed as kx fails: exit 2, no traceback."""
    lines = kx_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("kx: error: "), proc.stderr
    return lines[0]


def files_holding(folder: Path, secret: str) -> List[str]:
    """Every file under ``folder`` whose bytes contain ``secret``."""
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


# 1. secrets ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "http://alice:s3cretPW@127.0.0.1:5077",
        "https://s3cretPW@mlflow.example",
        "postgresql://bob:s3cretPW@db/mlflow",
    ],
)
def test_a_tracking_uri_with_credentials_is_refused_without_echoing_them(compose_cfg, uri):
    cfg = compose_cfg(f"tracking.uri={uri}")
    with pytest.raises(ConfigError) as refused:
        validate(cfg)
    message = str(refused.value)
    assert SECRET not in message and "\n" not in message
    assert ("MLFLOW_TRACKING_PASSWORD" in message) == uri.startswith("http")
    assert "PGPASSWORD" in message or "MLFLOW_TRACKING_TOKEN" in message


@pytest.mark.slow
def test_credentials_never_reach_the_console_the_run_folder_or_mlflow(tmp_path):
    with mlflow_server(tmp_path) as uri:
        with_user = uri.replace("http://", f"http://alice:{SECRET}@")
        refused = [
            run_train(tmp_path, *TINY, f"tracking.uri={with_user}", "hydra.run.dir=refused"),
            run_train(tmp_path, *TINY, "hydra.run.dir=refused", env=train_env(MLFLOW_TRACKING_URI=with_user)),
        ]
        for proc in refused:
            assert "MLFLOW_TRACKING_USERNAME" in one_error(proc) and SECRET not in proc.stdout + proc.stderr
        assert not (tmp_path / "refused").exists()  # refused before Hydra wrote anything

        env = train_env(MLFLOW_TRACKING_USERNAME="alice", MLFLOW_TRACKING_PASSWORD=SECRET)
        ok = run_train(tmp_path, *TINY, f"tracking.uri={uri}", "hydra.run.dir=run", env=env)
        assert ok.returncode == 0, ok.stderr
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("kx").experiment_id])
        assert run.info.status == "FINISHED"
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "artifacts").is_dir()
    assert SECRET not in ok.stdout + ok.stderr
    assert files_holding(tmp_path, SECRET) == []  # the run folder, .hydra/, the server's store and artifacts
