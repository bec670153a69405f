"""Start ``launch.py serve`` in a subprocess on a free port and talk to it over real HTTP."""

import contextlib
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from tests.conftest import PROJECT_DIR, free_port


def own_store_env() -> Dict[str, str]:
    """This environment without an MLflow store setting: a process in a test folder uses that folder's store."""
    return {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}


def launch(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python launch.py ARGS`` to completion."""
    cmd = [sys.executable, str(PROJECT_DIR / "launch.py"), *args]
    return subprocess.run(cmd, cwd=cwd, env=own_store_env(), capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def server(source: str, *settings: str, cwd: Path, timeout: float = 180) -> Iterator[str]:
    """``launch.py serve SOURCE port=<free> SETTINGS`` until ``/ping`` answers; yields its base URL and
    stops it (SIGTERM to its PID) afterwards."""
    port = free_port()
    log = cwd / f"serve-{port}.log"
    cmd = [sys.executable, str(PROJECT_DIR / "launch.py"), "serve", source, f"port={port}", *settings]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=own_store_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while request(port, "GET", "/ping", timeout=1)[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server {' '.join(cmd)} did not start:\n{log.read_text()}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def request(
    port_or_url: Any,
    method: str,
    path: str,
    body: Optional[bytes] = None,
    content_type: Optional[str] = None,
    timeout: float = 60,
    chunked: bool = False,
) -> Tuple[int, Any]:
    """One HTTP request; returns (status, decoded JSON body or the raw text); (0, error) when unreachable."""
    port = port_or_url if isinstance(port_or_url, int) else int(str(port_or_url).rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        if chunked:
            chunks: List[bytes] = [body[i : i + 65536] for i in range(0, len(body or b""), 65536)]
            connection.request(method, path, body=iter(chunks), headers=headers, encode_chunked=True)
        else:
            connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        text = answer.read().decode()
    except (OSError, http.client.HTTPException) as err:
        return 0, str(err)
    finally:
        connection.close()
    try:
        return answer.status, json.loads(text)
    except ValueError:
        return answer.status, text


def post_json(url: str, path: str, doc: Any) -> Tuple[int, Any]:
    return request(url, "POST", path, json.dumps(doc).encode(), "application/json")
