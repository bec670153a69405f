"""A real ``mlflow server`` on a free loopback port, for tests that track over HTTP."""

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from tests.conftest import free_port


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """Serve a store in ``folder`` (``server.db``, ``artifacts/``); yield its URL, stop it by PID after."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{folder / 'server.db'}", "--default-artifact-root", str(folder / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("mlflow server did not start within 60 s") from None
                time.sleep(0.3)
        yield uri
    finally:
        proc.terminate()
        proc.wait(timeout=30)
