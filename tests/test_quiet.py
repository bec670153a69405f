"""Quiet by default: a run's console shows kx's lines; third-party chatter goes to its log file only."""

import logging
import os
import subprocess
import sys

import pytest

from kx.quiet import KxOnly, native_stderr_to_log
from tests.conftest import PROJECT_DIR, train
from tests.helpers.sweeps import TINY

CHATTER = (
    "Creating initial MLflow database tables",
    "Updating database tables",
    "generated new fontManager",
    "Assets written to",
    "alembic",
    "absl::InitializeLog",
    "oneDNN custom operations",
)


def test_the_console_filter_passes_kx_and_third_party_errors_only():
    def record(name: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "message", None, None)

    quiet = KxOnly()
    assert quiet.filter(record("kx", logging.INFO)) and quiet.filter(record("kx.sweep", logging.INFO))
    assert not quiet.filter(record("mlflow.store.db.utils", logging.INFO))
    assert not quiet.filter(record("tensorflow", logging.WARNING))
    assert quiet.filter(record("tensorflow", logging.ERROR))


def test_native_start_up_lines_go_to_the_runs_log_file_and_stderr_comes_back(tmp_path, capfd):
    handler = logging.FileHandler(tmp_path / "train.log")
    logging.getLogger().addHandler(handler)
    try:
        with native_stderr_to_log():
            os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\n")  # as C++ writes it
        os.write(2, b"after\n")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert capfd.readouterr().err == "after\n"
    assert (tmp_path / "train.log").read_text() == "I0000 port.cc:153] oneDNN custom operations are on.\n"


@pytest.mark.slow
def test_a_tiny_runs_console_has_no_third_party_chatter_and_its_log_keeps_it(tmp_path):
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}  # a first run: matplotlib builds its cache
    cmd = [
        sys.executable,
        str(PROJECT_DIR / "train.py"),
        "model=mlp",
        "dataset=digits",
        "train.epochs=1",
        "hydra.run.dir=run",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = proc.stdout + proc.stderr
    assert "epoch=1 " in console and "MLflow run:" in console
    assert [line for line in console.splitlines() if any(words in line for words in CHATTER)] == []
    log = (tmp_path / "run" / "train.log").read_text()
    assert all(words in log for words in CHATTER[:4])


@pytest.mark.slow
def test_a_local_sweeps_console_is_kx_lines_ending_with_its_mlflow_link(tmp_path):
    proc = train(tmp_path, "-m", *TINY, "train.learning_rate=0.05,0.1", "tracking.uri=sqlite:///mlflow.db")
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = (proc.stdout + proc.stderr).splitlines()
    assert [line for line in console if any(words in line for words in CHATTER)] == []
    (link,) = [line for line in console if "MLflow sweep: " in line]
    assert "MLflow sweep: http://127.0.0.1:5000/#/experiments/" in link
