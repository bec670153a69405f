"""``launch.py ui``: MLflow's UI on the configured store, and the links that open the latest sweep.

A local store (SQLite) gets a ``mlflow server`` on 127.0.0.1 (a free port unless one is given), run
until Ctrl-C; a tracking server is already serving its UI, so only its links are printed. The
links open MLflow's training view (``workflowType=machine_learning``), not its GenAI pages.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, List, Optional

from omegaconf import DictConfig

from kx.tracking import open_run
from kx.tracking.links import compare_link, experiment_link, run_link
from kx.tracking.mlflow_tracker import TrackingError, resolve_uri
from kx.tracking.secrets import redact, without_credentials

HOST = "127.0.0.1"
START_TIMEOUT_S = 180.0  # mlflow server on a busy two-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def latest_sweep(run: Any) -> Optional[Any]:
    """The sweep parent run (local or SageMaker) started last in the experiment, or None."""
    found = run.client.search_runs(
        [run.experiment_id],
        filter_string="tags.`kx.sweep` = 'true'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None


def links(run: Any, base: str) -> List[str]:
    """Lines naming the experiment's page and, when there is a sweep, its parent and its comparison."""
    lines = [f"MLflow UI: {experiment_link(base, run.experiment_id)}"]  # base: an http:// address
    sweep = latest_sweep(run)
    if sweep is None:
        return [*lines, "no sweep in this experiment yet"]
    children = run.client.search_runs(
        [run.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{sweep.info.run_id}'"
    )
    ids = [c.info.run_id for c in sorted(children, key=lambda c: c.info.start_time)]
    lines.append(
        f"latest sweep ({sweep.info.run_name}, {len(ids)} trials): "
        f"{run_link(base, run.experiment_id, sweep.info.run_id)}"
    )
    if ids:
        lines.append(f"its trials side by side: {base}/{compare_link(run.experiment_id, ids)}")
    return lines


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise TrackingError(f"mlflow server exited with code {server.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise TrackingError(f"mlflow server did not answer {url}/health within {timeout:.0f} s")


def start_server(uri: str, port: int) -> subprocess.Popen:
    """``mlflow server`` on ``uri``, one worker, without its job runner (which adds processes)."""
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return subprocess.Popen(command, env=env)


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def serve(tracking: DictConfig, port: Optional[int]) -> int:
    """Print the links; for a local store, serve it until Ctrl-C or SIGTERM."""
    uri = resolve_uri(tracking.uri)
    run = open_run(tracking)
    if uri.startswith(("http://", "https://")):
        print("\n".join(links(run, without_credentials(uri).rstrip("/"))), flush=True)
        return 0
    base = f"http://{HOST}:{port or free_port()}"
    server = start_server(uri, int(base.rsplit(":", 1)[1]))
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        wait_healthy(base, server)
        print("\n".join(links(run, base)), flush=True)
        print(f"serving {redact(uri)}; Ctrl-C stops it", flush=True)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop(server)
    return 0
