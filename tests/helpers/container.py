"""Run train.py as the framework images do: the SageMaker training toolkit's ``train`` command, in a
Python like the image's, on an ``/opt/ml`` laid out by the rehearsal."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
# Built by .ci/run with the images' Python and framework versions (and the job requirements' floors).
IMAGE_PYTHONS = {
    "tensorflow": PROJECT_DIR / ".venv312" / "bin" / "python",  # tensorflow-training:2.19-cpu-py312
    "mxnet": PROJECT_DIR / ".venv38" / "bin" / "python",  # mxnet-training:1.9-cpu-py38
}


def image_python(backend: str) -> Path:
    """The Python that stands in for ``backend``'s training image; CI must have it, elsewhere skip."""
    python = IMAGE_PYTHONS[backend]
    if not python.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{python} is missing: .ci/run builds it")
        pytest.skip(f"{python} is missing (see .ci/run)")
    return python


def write_channel(folder: Path, name: str, images: int = 40) -> Path:
    """A small Fashion-MNIST-shaped channel file ``folder/<name>.npz`` (``image``, ``label`` uint8)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npz"
    np.savez(
        path,
        image=rng.integers(0, 255, (images, 28, 28), dtype=np.uint8),
        label=rng.integers(0, 10, images, dtype=np.uint8),
    )
    return path


def toolkit_job(
    folder: Path, backend: str, hyperparameters: Dict[str, str], channels: Dict[str, Path]
) -> Tuple[subprocess.CompletedProcess, Path]:
    """A one-host job of kx's packaged source with these hyperparameters (as a console user, boto3 or
    a tuning job may send them) and channel files; return the toolkit's finished process and /opt/ml."""
    from kx.sagemaker import job_request, rehearsal

    root = folder / "opt_ml"
    source = job_request.Upload(
        job_request.package_source(folder, backend), "s3://kx-test/code/sourcedir.tar.gz"
    )
    uploads = {
        name: job_request.Upload(path, f"s3://kx-test/data/{name}/{path.name}")
        for name, path in channels.items()
    }
    hps = {
        "backend": backend,
        **hyperparameters,
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": source.uri,
    }
    plan = job_request.JobPlan("kx-test", "", hps, source, uploads)
    request = {
        "TrainingJobName": "kx-test",
        "HyperParameters": hps,
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        "InputDataConfig": [{"ChannelName": name} for name in channels],
    }
    rehearsal.layout(root, request, plan, ["algo-1"], "algo-1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "KX_", "MLFLOW_"))}
    proc = subprocess.run(
        [str(image_python(backend)), "-c", rehearsal.TOOLKIT_TRAIN],
        cwd=root,
        env={**env, **rehearsal.container_env(root, "kx-test")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, root


def toolkit_argv(folder: Path, hyperparameters: Dict[str, str]) -> List[str]:
    """The script's argv as the toolkit builds it from ``hyperparameters.json`` (its Environment)."""
    config = folder / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text("{}")
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    code = "import json; from sagemaker_training import environment; print(json.dumps(environment.Environment().to_cmd_args()))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(folder)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.splitlines()[-1])


def script_command(root: Path) -> str:
    """The command line the toolkit ran train.py with, from a rehearsed job's log."""
    log = (root / "output" / "rehearsal.log").read_text()
    return log.split("Invoking script with the following command:", 1)[1].strip().splitlines()[0]
