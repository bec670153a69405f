"""A local moto server (SageMaker, S3, SageMaker runtime), the environment that points AWS clients at
it, and ``launch.py`` run against it."""

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

from tests.conftest import NETGUARD, PROJECT_DIR, free_port

REGION = "eu-west-1"
ROLE = "arn:aws:iam::111122223333:role/kx-test"
BUCKET = "kx-test-bucket"
CLOSED = "http://127.0.0.1:9"  # a closed port: any AWS call fails
SAGEMAKER = ["target=sagemaker", f"target.role={ROLE}", f"target.bucket={BUCKET}", "target.poll_s=0.2"]


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """``python -m moto.server`` on a free loopback port until the block ends (stopped by PID)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def aws_env(endpoint: str) -> Dict[str, str]:
    """This process's environment with every AWS client pointed at ``endpoint`` with test credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KX_", "MLFLOW_TRACKING"))}
    return {
        **env,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAGEMAKER_VALIDATE_ROLE": "false",
    }


def clients(endpoint: str, bucket: str = BUCKET) -> Dict[str, Any]:
    """boto3 clients on ``endpoint`` (its state reset), with ``bucket`` created."""
    import boto3

    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    s3 = session.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    return {
        "endpoint": endpoint,
        "session": session,
        "s3": s3,
        "sm": session.client("sagemaker", endpoint_url=endpoint),
    }


def guarded(args: Sequence[str]) -> List[str]:
    """``args``, and for a rehearsal the tests' network guard in its jobs' environment (the rehearsal
    gives jobs only their own environment, as SageMaker does)."""
    if "target=sagemaker_local" not in args:
        return list(args)
    return [*args, f"+target.environment.PYTHONPATH={NETGUARD}"]


def launch_here(
    monkeypatch: Any,
    capsys: Any,
    cwd: Path,
    *args: str,
    endpoint: str = CLOSED,
    env: Optional[Dict[str, Optional[str]]] = None,
) -> subprocess.CompletedProcess:
    """:func:`launch` in this process (``launch.run``): the same environment, folder, exit code and
    output, without a Python start and the SDK's import per call."""
    import launch as entry

    for key in [k for k in os.environ if k.startswith(("AWS_", "KX_", "MLFLOW_TRACKING"))]:
        monkeypatch.delenv(key)
    for key, value in {**aws_env(endpoint), **(env or {})}.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        elif os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    try:
        code = entry.run(guarded(args))
    except SystemExit as done:
        code = done.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def launch(
    cwd: Path,
    *args: str,
    endpoint: str = CLOSED,
    env: Optional[Dict[str, Optional[str]]] = None,
    timeout: int = 300,
) -> subprocess.CompletedProcess:
    """``python launch.py ARGS`` against ``endpoint``; ``env`` adds variables (None removes one)."""
    environ = {**aws_env(endpoint), **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "launch.py"), *guarded(args)],
        cwd=cwd,
        env={k: v for k, v in environ.items() if v is not None},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "net_guard: blocked" not in proc.stderr, proc.stderr
    return proc
