"""A local moto server (SageMaker, S3, SageMaker runtime) and the environment that points AWS clients at it."""

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from typing import Dict, Iterator

from tests.conftest import free_port

REGION = "eu-west-1"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """``python -m moto.server`` on a free loopback port until the block ends (stopped by PID)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
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
    return {**env, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
