"""The benchmarks a user runs to check kx's figures on their own machine still run and print their
figure, on the smallest settings (the time-to-accuracy and tuning benchmarks have their own tests;
multi_worker.py is left out for its cost: two rehearsals, while tests/test_multi_worker.py covers them)."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR

CASES = {
    "step_profile.py": (
        ["dataset.limit=512", "train.batch_size=64", "backend.precision=float32"],
        [
            r"^precision float32, layout channels_last, batch 64",
            r"^fit step\s+[0-9.]+ ms",
            r"^  conv2d_1\s",
        ],
    ),
    "dry_run.py": (
        ["--repeats", "1"],
        [
            r"^  training \(fashion_mnist\)\s+this [0-9.]+ s wall",
            r"^  tuning \(sweep=fashion\)\s+this [0-9.]+ s wall",
        ],
    ),
    "winograd.py --grid": (
        ["--quick"],
        [
            r"^14x14x64 to 128: TensorFlow +[0-9.]+ ms, F\(6x6\) +[0-9.]+ ms \([0-9.]+\), F\(4x4\) +[0-9.]+ ms \([0-9.]+\)$"
        ],
    ),
    "winograd.py": (
        ["--quick"],
        [
            r"^float32 training step, batch 256: Keras Conv2D +[0-9.]+ ms, kx WinogradConv2D +[0-9.]+ ms: ratio [0-9.]+$"
        ],
    ),
    "overhead.py": (
        ["--epochs", "2", "--samples", "1000", "--repeats", "1"],
        [r"^overhead ratio \(median epoch, first epochs excluded\): [0-9.]+"],
    ),
}
AVX2 = {"step_profile.py", "winograd.py", "winograd.py --grid"}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CASES))
def test_a_benchmark_runs_and_prints_its_figure(script, tmp_path):
    args, figures = CASES[script]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    if script in AVX2:  # as on a CPU without AVX-512, where kx computes by Winograd
        env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    proc = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "benchmarks" / script.split()[0]), *script.split()[1:], *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for figure in figures:
        assert re.search(figure, proc.stdout, re.M), (figure, proc.stdout, proc.stderr[-2000:])


def test_a_benchmark_refuses_settings_that_leave_nothing_to_measure():
    proc = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "benchmarks" / "overhead.py"), "--epochs", "1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "overhead.py: error: --epochs 1: give 2 or more (each run's first epoch is left out)"
    )
