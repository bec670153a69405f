"""One trial as a fresh ``train.py`` process: its own Keras engine, its own failure, its share of CPUs.

Trials run in their own session, so Ctrl-C reaches the sweep only; the sweep stops them with
SIGTERM (kx's graceful stop: the batch ends, the run ends KILLED). On Linux a trial also gets
SIGTERM when the sweep process dies, however it dies.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from kx.machine import usable_cpus

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
ERROR_PREFIX = "kx: error: "


def thread_env(parallel: int, environ: Mapping[str, str]) -> Dict[str, str]:
    """Thread limits giving each of ``parallel`` trials its share of the CPUs (what the user set wins)."""
    if parallel <= 1:
        return {}
    share = max(1, usable_cpus() // parallel)
    env = {name: str(share) for name in THREAD_VARS}
    env["TF_NUM_INTEROP_THREADS"] = "1"
    if share == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return {name: value for name, value in env.items() if name not in environ}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class TrialProcess:
    """A running ``train.py``; its console output goes to ``<run dir>/console.log``."""

    def __init__(self, number: int, command: List[str], env: Dict[str, str], run_dir: Path) -> None:
        self.number = number
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.console = run_dir / "console.log"
        self.started = time.monotonic()
        with self.console.open("wb") as out:
            self.popen = subprocess.Popen(
                command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def poll(self) -> Optional[int]:
        return self.popen.poll()

    def stop(self, grace: float = 60.0) -> int:
        """SIGTERM (kx stops after the batch), then SIGKILL after ``grace`` seconds; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()

    def reason(self) -> str:
        """Why the trial failed, in one line: its ``kx: error:`` line, else its last line."""
        lines = [
            line.strip() for line in self.console.read_text(errors="replace").splitlines() if line.strip()
        ]
        errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
        if errors:
            return errors[-1][len(ERROR_PREFIX) :]
        code = self.popen.returncode
        what = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"{what}: {lines[-1]}" if lines else what
