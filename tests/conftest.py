"""Shared fixtures: compose configs like train.py does, and run train.py as a user would."""

import copy
import functools
import gc
import os
import runpy
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from omegaconf import DictConfig

from kx import process
from kx.run_config import compose, register

PROJECT_DIR = Path(__file__).resolve().parents[1]
NETGUARD = Path(__file__).resolve().parent / "netguard"

# Every process the tests start stays on this machine: the guard refuses other addresses.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NETGUARD), os.environ.get("PYTHONPATH")]))
os.environ.update(
    {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "AWS_EC2_METADATA_DISABLED": "true"}
)
sys.path.insert(0, str(NETGUARD))
import sitecustomize  # noqa: E402,F401  (pytest's own process too)

register()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: Optional[pytest.Item]) -> Iterator[None]:
    """When a test module ends, what outlives it (mostly the libraries its tests imported: SageMaker's
    and botocore's models, MLflow, Hydra) leaves the cyclic garbage collector's watch (gc.freeze):
    every full collection would otherwise walk all of it again, a large share of the fast tier's CPU."""
    yield
    if nextitem is None or nextitem.module is not item.module:
        gc.collect()
        gc.freeze()


@functools.lru_cache(maxsize=None)
def composed(overrides: Tuple[str, ...]) -> DictConfig:
    """The config for ``overrides``, composed once per session (Hydra's compose API, as train.py)."""
    return compose(list(overrides))


@pytest.fixture
def compose_cfg() -> Callable[..., DictConfig]:
    """Compose the config for the given overrides, exactly as train.py would: a copy of the session's
    composition, the test's to change."""

    def _compose(*overrides: str) -> DictConfig:
        return copy.deepcopy(composed(overrides))

    return _compose


@pytest.fixture(scope="session", autouse=True)
def service_models_read_once() -> Iterator[None]:
    """botocore reads its service models (large JSON files) once per test session, as once per
    launch.py process: every boto3 session the tests make shares one loader."""
    import botocore.loaders
    import botocore.session

    shared = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", shared)
        yield


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """One MLflow SQLite store with its tables made: making them is most of what a new store costs."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_store(tmp_path: Path, mlflow_template: Path) -> str:
    """The URI of ``tmp_path/mlflow.db`` (where train.py and launch.py there open their store), a copy
    of :func:`mlflow_template`: an empty store, as a first run would create it."""
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python train.py ARGS`` in ``cwd`` with its own MLflow store; return the finished process."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    env = {k: v for k, v in env.items() if not k.startswith("KX_")}
    cmd: List[str] = [sys.executable, str(PROJECT_DIR / "train.py"), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def job_failure(cwd: Path, env: Dict[str, str], *args: str) -> str:
    """Run ``train.py ARGS`` as a SageMaker job that must fail; return its FailureReason (the
    ``/opt/ml/output/failure`` text), having checked that it is also the one line on stderr."""
    env = {"SM_TRAINING_ENV": "{}", "SM_OUTPUT_DIR": str(cwd / "output"), "PATH": "", **env}
    proc = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "train.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    failure = (cwd / "output" / "failure").read_text()
    assert proc.stderr.strip() == f"kx: error: {failure}"
    return failure


@pytest.fixture
def check_train(tmp_path: Path, monkeypatch, capsys) -> Callable[..., subprocess.CompletedProcess]:
    """train.py's checks before Hydra starts a run, in this process and in ``tmp_path``: the exit code
    (0 when the run would start), stdout and stderr a user of ``python train.py ARGS`` would see."""
    import train as entry

    monkeypatch.chdir(tmp_path)

    def _check(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            entry.checked_argv(list(args))
            code = 0
        except SystemExit as done:
            code = done.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return _check


@pytest.fixture
def train_here(tmp_path: Path, monkeypatch, capsys) -> Callable[..., subprocess.CompletedProcess]:
    """``python train.py ARGS`` in this process and in ``tmp_path`` (train.py run as ``__main__``), for
    commands that end before a run starts (``--cfg``, ``--help``, bad input): a run sets up Hydra's
    logging and trains, which :func:`run_train` does in a process of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(process, "quiet_libraries", lambda: None)  # this process's settings stay
    for key in [
        k for k in os.environ if k.startswith("KX_") or k in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")
    ]:
        monkeypatch.delenv(key)

    def _run(*args: str) -> subprocess.CompletedProcess:
        monkeypatch.setattr(sys, "argv", [str(PROJECT_DIR / "train.py"), *args])
        capsys.readouterr()
        try:
            runpy.run_path(str(PROJECT_DIR / "train.py"), run_name="__main__")
            code = 0
        except SystemExit as done:
            code = done.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return _run


@pytest.fixture
def launch_here(tmp_path: Path, monkeypatch, capsys) -> Callable[..., subprocess.CompletedProcess]:
    """``python launch.py ARGS`` run in this process, in ``tmp_path`` (tests.helpers.moto.launch_here)."""
    from tests.helpers.moto import launch_here as run

    return functools.partial(run, monkeypatch, capsys, tmp_path)


@pytest.fixture
def run_train(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Train in a temporary folder: its outputs/ and mlflow.db belong to the test alone."""

    def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = train(tmp_path, *args)
        assert "net_guard: blocked" not in proc.stderr, proc.stderr
        if check and proc.returncode != 0:
            pytest.fail(f"train.py {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return _run


@pytest.fixture(scope="session")
def moto_server():
    """moto's SageMaker and S3 on a free loopback port for the session (``aws`` resets its state for
    each test), stopped by PID afterwards."""
    from tests.helpers.moto import moto_server as server

    with server() as url:
        yield url


@pytest.fixture
def aws(moto_server):
    """A clean moto state with the job bucket, and boto3 clients on it."""
    from tests.helpers.moto import clients

    return clients(moto_server)
