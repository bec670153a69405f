"""Start train.py as a user would and stop it mid-run: after an epoch, with a signal or kill -9; run a
script in a fresh Python (an engine is chosen once per process) and read its JSON line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from kx.machine import usable_cpus
from tests.conftest import PROJECT_DIR


def start_train(cwd: Path, *args: str) -> subprocess.Popen:
    """``python train.py ARGS`` in ``cwd``, unbuffered, its output piped; the caller waits for it."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    env = {**{k: v for k, v in env.items() if not k.startswith("KX_")}, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(PROJECT_DIR / "train.py"), *args]
    # SIGINT as a terminal's Ctrl-C delivers it, even when this test runs in a background job
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def stop_after_epoch(proc: subprocess.Popen, epoch: int, sig: int) -> Tuple[str, str, float]:
    """Send ``sig`` once ``epoch`` is logged; return stdout, stderr and seconds from signal to exit."""
    seen: List[str] = []
    for line in proc.stdout:
        seen.append(line)
        if f"] - epoch={epoch} " in line:
            break
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return "".join(seen) + out, err, time.monotonic() - sent


def busy() -> float:
    """How many times slower than on an idle machine processes run now: the load average per CPU, at
    least 1. A bound on how fast a process reacts is scaled by it, so that a busy neighbour (the other
    pytest-xdist worker in CI, another job) does not fail it, while an idle machine keeps it as written."""
    return max(1.0, os.getloadavg()[0] / usable_cpus())


def kx_lines(stderr: str) -> List[str]:
    """stderr without the engines' own C++ log lines (TensorFlow's ``I0000``/``E0000``, absl's)."""
    engine = ("I0000", "W0000", "E0000", "WARNING: All log messages before absl")
    return [
        line
        for line in stderr.splitlines()
        if line and not line.startswith(engine) and " INFO mlflow" not in line
    ]


def run_script(code: str, *args: str, env: Optional[Dict[str, str]] = None) -> Any:
    """``python -c CODE ARGS`` (with ``env`` added to the environment), which must succeed; what the
    last line of its output holds, as JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
