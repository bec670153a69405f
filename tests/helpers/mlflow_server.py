"""A real ``mlflow server`` for tests, as a team would run one: a database backend store and an S3
artifact store it serves to its clients (``--artifacts-destination``), on a free loopback port,
stopped by its PID (its process group) afterwards."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, Optional

from tests.conftest import free_port


@contextlib.contextmanager
def mlflow_server(backend_store: str, artifacts: str, env: Optional[Dict[str, str]] = None) -> Iterator[str]:
    """``mlflow server`` on ``backend_store`` with artifacts under ``artifacts`` (``env`` points
    its S3 client at the store); yield its URL once ``/health`` answers."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            backend_store,
            "--artifacts-destination",
            artifacts,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env={**os.environ, **(env or {}), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def local_mlflow_server(folder: Path) -> "contextlib.AbstractContextManager[str]":
    """A server on a SQLite store in ``folder`` (``server.db``, ``artifacts/``)."""
    return mlflow_server(f"sqlite:///{folder / 'server.db'}", str(folder / "artifacts"))
