"""Faults an operator meets, each injected for real: one ``kx: error:`` line, exit 2, the MLflow run
ended with its true state, nothing lost, and no password written anywhere (issue 20)."""

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

from kx import train_cli
from kx.backends import create_backend
from kx.backends.checkpoint import Checkpoint
from kx.backends.monitor import EpochMonitor
from kx.config import ConfigError, Objective
from kx.data.dataset import DataError
from kx.data.loading import load_dataset
from kx.run_config import validate
from kx.tracking import TrackingError, start_training_run
from tests.conftest import PROJECT_DIR
from tests.helpers.mlflow_server import local_mlflow_server
from tests.helpers.processes import kx_lines, start_train

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


def runs(folder: Path) -> List[Any]:
    """The runs of experiment kx in ``folder``'s own store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("kx").experiment_id])


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
    with local_mlflow_server(tmp_path) as uri:
        with_user = uri.replace("http://", f"http://alice:{SECRET}@")
        refused = [
            run_train(tmp_path, *TINY, f"tracking.uri={with_user}", "hydra.run.dir=refused"),
            run_train(tmp_path, *TINY, "hydra.run.dir=refused", env=train_env(MLFLOW_TRACKING_URI=with_user)),
            subprocess.run(
                [
                    sys.executable,
                    str(PROJECT_DIR / "launch.py"),
                    "target=sagemaker",
                    f"tracking.uri={with_user}",
                    "--dry-run",
                ],
                cwd=tmp_path,
                env=train_env(),
                capture_output=True,
                text=True,
            ),
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


# 6, 11. checkpoints: crash-safe rotation, a damaged checkpoint ---------------------------------------


class Killed(Exception):
    """The process died at this step of a save."""


class Engine:
    """The smallest backend a checkpoint needs: its state is the epoch it reached."""

    def __init__(self) -> None:
        self.epoch = 0

    def save_state(self, folder: Path) -> None:
        (folder / "state.json").write_text(json.dumps(self.epoch))

    def load_state(self, folder: Path) -> None:
        self.epoch = json.loads((folder / "state.json").read_text())


def save_epoch(checkpoint: Checkpoint, epoch: int) -> None:
    engine, monitor = Engine(), EpochMonitor(Objective("val_acc", "maximize"))
    for done in range(1, epoch + 1):
        monitor.end_epoch(done, {"val_acc": done / 10})
    engine.epoch = epoch
    checkpoint.save(engine, monitor)


def restored(folder: Path) -> int:
    """The epoch a new process resumes from; its engine and monitor must agree."""
    engine, monitor = Engine(), EpochMonitor(Objective("val_acc", "maximize"))
    epochs = Checkpoint(str(folder)).restore(engine, monitor)
    assert engine.epoch == epochs
    return epochs


def kill_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the ``step``-th file operation of what follows kill the process (a monitor.json half written)."""
    count = itertools.count()

    def dying(fn):
        def wrapped(*args, **kwargs):
            if next(count) == step:
                raise Killed()
            return fn(*args, **kwargs)

        return wrapped

    def half_written(self, path: Path) -> None:
        if next(count) == step:
            path.write_text('{"history": {"val_')
            raise Killed()
        original_save(self, path)

    original_save = EpochMonitor.save
    monkeypatch.setattr(shutil, "rmtree", dying(shutil.rmtree))
    monkeypatch.setattr(Path, "rename", dying(Path.rename))
    monkeypatch.setattr(Path, "mkdir", dying(Path.mkdir))
    monkeypatch.setattr(Engine, "save_state", dying(Engine.save_state))
    monkeypatch.setattr(EpochMonitor, "save", half_written)


@pytest.mark.parametrize("step", range(12))
def test_a_save_killed_at_any_step_resumes_from_a_complete_checkpoint(tmp_path, monkeypatch, step):
    folder = tmp_path / "checkpoints"
    save_epoch(Checkpoint(str(folder)), 1)
    with monkeypatch.context() as patched:
        kill_at(patched, step)
        with contextlib.suppress(Killed):
            save_epoch(Checkpoint(str(folder)), 2)
    assert restored(folder) in (1, 2)  # the only complete checkpoint is never removed
    save_epoch(Checkpoint(str(folder)), 3)
    assert restored(folder) == 3 and sorted(p.name for p in folder.iterdir()) == ["last"]


@pytest.mark.parametrize(
    "left, resumed",
    [(("previous", "partial"), 2), (("previous", "partial-incomplete"), 1), (("partial",), 1)],
)
def test_every_state_between_the_renames_of_a_save_resumes(tmp_path, left, resumed):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for epoch, name in enumerate(left, start=1):
        scratch = tmp_path / str(epoch)
        save_epoch(Checkpoint(str(scratch)), epoch)
        (scratch / "last").rename(folder / f"last.{name.split('-')[0]}")
        if name.endswith("incomplete"):
            (folder / "last.partial" / "monitor.json").unlink()
    assert restored(folder) == resumed
    assert (folder / "last" / "monitor.json").is_file()


@pytest.mark.slow
def test_a_truncated_checkpoint_is_one_line_and_the_run_ends_failed(tmp_path):
    args = [*TINY, "train.checkpoint_dir=ckpt", "hydra.run.dir=run"]
    assert run_train(tmp_path, *args).returncode == 0
    saved = tmp_path / "ckpt" / "last" / "last.keras"
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    message = one_error(run_train(tmp_path, *args))  # the same settings: it resumes, and cannot
    assert "Cannot resume from the checkpoint in ckpt/last" in message and "move that folder away" in message
    (run,) = runs(tmp_path)
    assert run.info.status == "FAILED" and saved.is_file()  # nothing deleted


# 7, 13. output and checkpoint folders ----------------------------------------------------------------


@pytest.mark.parametrize(
    "override, words",
    [
        (
            "train.checkpoint_dir=/proc/ckpt",
            "Cannot write the checkpoint folder train.checkpoint_dir=/proc/ckpt",
        ),
        ("hydra.run.dir=", "hydra.run.dir is empty"),
        ("hydra.run.dir=' '", "hydra.run.dir is empty"),
    ],
)
def test_unusable_folders_are_refused_before_hydra_writes_anything(override, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(words)):
        train_cli.check_argv([*TINY, override])
    assert list(tmp_path.iterdir()) == []


def test_an_empty_sweep_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="hydra.sweep.dir is empty"):
        train_cli.check_argv(["-m", *TINY, "hydra.sweep.dir="])


# 8. a store that cannot be written ------------------------------------------------------------------------


def test_a_read_only_sqlite_store_is_one_line(tmp_path, compose_cfg, mlflow_store):
    from mlflow.tracking import MlflowClient

    uri = mlflow_store
    MlflowClient(uri).create_experiment("kx")
    database = tmp_path / "mlflow.db"
    if subprocess.run(["chattr", "+i", str(database)], capture_output=True).returncode != 0:
        if os.geteuid() == 0:
            pytest.skip("chattr +i is not permitted here, and root writes a read-only file anyway")
        database.chmod(0o444)
    try:
        with pytest.raises(TrackingError) as refused:
            start_training_run(compose_cfg(*TINY, f"tracking.uri={uri}"), [], tmp_path / "run")
    finally:
        subprocess.run(["chattr", "-i", str(database)], capture_output=True)
    message = str(refused.value)
    assert "Cannot write to MLflow tracking store" in message and "tracking.enabled=false" in message
    assert "\n" not in message


# 9, 10. damaged or inconsistent data ------------------------------------------------------------------


def npz_file(folder: Path, val_size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    path = folder / "data.npz"
    np.savez_compressed(
        path,
        x_train=rng.integers(0, 255, (40, 16, 16), np.uint8),
        y_train=np.arange(40) % 4,
        x_test=rng.integers(0, 255, (20, val_size, val_size), np.uint8),
        y_test=np.arange(20) % 4,
    )
    return path


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        flip_byte,
        lambda p: p.write_bytes(b"PK\x03\x04junk"),
    ],
    ids=["truncated", "bad-crc", "junk"],
)
def test_a_damaged_npz_is_one_line(tmp_path, compose_cfg, damage):
    path = npz_file(tmp_path)
    damage(path)
    cfg = compose_cfg("dataset=npz", f"dataset.path={path}")
    with pytest.raises(DataError, match=re.escape(f"Cannot read {path}")) as refused:
        load_dataset(cfg.dataset, "channels_last", 0)
    assert "\n" not in str(refused.value)


def test_npz_sets_of_different_image_shapes_are_refused(tmp_path, compose_cfg):
    cfg = compose_cfg("dataset=npz", f"dataset.path={npz_file(tmp_path, val_size=20)}")
    with pytest.raises(
        DataError, match=r"training images have shape \(16, 16\) but validation images \(20, 20\)"
    ):
        load_dataset(cfg.dataset, "channels_last", 0)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` grey pixels (its pixels never come: a bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_png_is_one_line(tmp_path, compose_cfg):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("L", (8, 8)).save(tmp_path / name / "ok.png")
    (tmp_path / "a" / "bomb.png").write_bytes(png_header(20000, 20000))
    cfg = compose_cfg("dataset=image_folder", f"dataset.path={tmp_path}")
    with pytest.raises(DataError, match="bomb.png.*decompression bomb") as refused:
        load_dataset(cfg.dataset, "channels_last", 0)
    assert "\n" not in str(refused.value)


# 12. one checkpoint folder, two processes ----------------------------------------------------------------


@pytest.mark.slow
def test_a_second_process_never_takes_over_a_live_run(tmp_path):
    args = [
        "dataset=synthetic",
        "dataset.train_samples=3000",
        "train.epochs=1000",
        "model=mlp",
        "train.early_stopping.enabled=false",
        "train.checkpoint_dir=ckpt",
    ]
    first = start_train(tmp_path, *args, "hydra.run.dir=first")
    try:
        for line in first.stdout:
            if "] - epoch=1 " in line:
                break
        (owner,) = runs(tmp_path)
        second = run_train(tmp_path, *args, "hydra.run.dir=second")
        message = one_error(second)
        assert f"belongs to MLflow run {owner.info.run_id}, still training in process {first.pid}" in message
        (run,) = runs(tmp_path)
        assert first.poll() is None, first.communicate()  # the owner trains on
        assert run.info.status == "RUNNING" and run.data.tags["kx.pid"] == str(first.pid)
    finally:
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=120)
    (run,) = runs(tmp_path)
    assert first.returncode == 130 and "kx: error: Training stopped by SIGINT" in err, err[-3000:]
    assert run.info.status == "KILLED" and run.data.tags["kx.pid"] == str(first.pid)


# 14. a backend's _target_ names a kx engine class only --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, words",
    [
        ("backend.impl=os:system", "Unknown config key backend.impl"),
        ("+backend.impl=os:system", "backend.impl"),
        ("backend.name=caffe", "backend.name='caffe' is not a backend KerasBackend trains"),
        ("backend._target_=os.system", "backend._target_='os.system' is not a kx engine class"),
        (
            "backend._target_=kx.backends.nope.Engine",
            "is not a kx engine class; choose backend=<name> with one of",
        ),
    ],
)
def test_config_never_names_code_to_import(compose_cfg, override, words):
    with pytest.raises(ConfigError, match=re.escape(words)) as refused:
        validate(compose_cfg(override))
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("name", sorted(p.stem for p in (PROJECT_DIR / "conf" / "backend").glob("*.yaml")))
def test_every_backend_option_builds_its_engine_from_its_target(compose_cfg, name):
    """conf/backend/<name>.yaml's ``_target_`` is the class create_backend instantiates (no framework
    imported: an engine imports its framework in ``prepare``)."""
    cfg = compose_cfg(f"backend={name}")
    validate(cfg)
    engine = create_backend(cfg.backend)
    assert engine.name == name and type(engine).__name__ == (
        "GluonBackend" if name == "mxnet" else "KerasBackend"
    )
