"""``target=sagemaker_local``: run the very job target=sagemaker would submit, here, without Docker.

From the CreateTrainingJob request it lays out the container's ``/opt/ml`` tree in a temporary
folder (config JSON files, channel folders, the unpacked source), sets the ``SM_*`` environment the
framework toolkit sets, and runs ``python train.py --key value ...`` with the toolkit's argv. Then it
reads the metrics back from the log with the job's own metric definitions and reports the run in
the shape of a DescribeTrainingJob response.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

from omegaconf import DictConfig

from kx.sagemaker.job import JobPlan

HOST = "algo-1"


def user_argv(hyperparameters: Dict[str, str]) -> List[str]:
    """The toolkit's argv: every non-``sagemaker_`` hyperparameter as ``--key value``, JSON decoded."""
    argv: List[str] = []
    for key, raw in sorted(hyperparameters.items()):
        if key.startswith("sagemaker_"):
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        argv += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return argv


def scrape_metrics(log: str, definitions: List[Dict[str, str]]) -> Dict[str, float]:
    """Each metric's last match in ``log``, as SageMaker computes a job's final metric values."""
    found = {}
    for definition in definitions:
        matches = re.findall(definition["Regex"], log)
        if matches:
            found[definition["Name"]] = float(matches[-1])
    return found


def _layout(root: Path, request: Dict[str, Any], job: JobPlan) -> Tuple[Dict[str, str], List[str]]:
    """Create /opt/ml under ``root``; return the toolkit's SM_* environment and the script's argv."""

    def local(path: str) -> str:
        return str(root / path[len("/opt/ml/") :]) if path.startswith("/opt/ml/") else path

    config, code = root / "input" / "config", root / "code"
    for folder in (config, code, root / "model", root / "output" / "data", root / "checkpoints"):
        folder.mkdir(parents=True, exist_ok=True)
    hps = {k: local(v) for k, v in request.get("HyperParameters", {}).items()}
    channels = {}
    for name, upload in job.channels.items():
        channels[name] = root / "input" / "data" / name
        channels[name].mkdir(parents=True)
        shutil.copy(upload.local, channels[name] / upload.local.name)
    with tarfile.open(job.source.local) as tar:
        tar.extractall(code)
    resource = {"current_host": HOST, "hosts": [HOST], "network_interface_name": "eth0"}
    input_config = {c["ChannelName"]: {"TrainingInputMode": c.get("InputMode", "File"),
                                       "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
                    for c in request.get("InputDataConfig", [])}  # fmt: skip
    (config / "hyperparameters.json").write_text(json.dumps(hps, indent=2))
    (config / "inputdataconfig.json").write_text(json.dumps(input_config, indent=2))
    (config / "resourceconfig.json").write_text(json.dumps(resource, indent=2))
    env = {
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_INPUT_DIR": str(root / "input"),
        "SM_INPUT_CONFIG_DIR": str(config),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HOSTS": json.dumps([HOST]),
        "SM_CURRENT_HOST": HOST,
        "SM_NUM_GPUS": "0",
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_HPS": json.dumps({k: v for k, v in hps.items() if not k.startswith("sagemaker_")}),
        "SM_USER_ARGS": json.dumps(user_argv(hps)),
        "SM_USER_ENTRY_POINT": hps.get("sagemaker_program", "train.py"),
        "SM_MODULE_DIR": hps.get("sagemaker_submit_directory", ""),
        "SM_RESOURCE_CONFIG": json.dumps(resource),
        "SM_INPUT_DATA_CONFIG": json.dumps(input_config),
        "SM_LOG_LEVEL": hps.get("sagemaker_container_log_level", "20"),
        "SM_TRAINING_ENV": json.dumps(
            {
                "job_name": request["TrainingJobName"],
                "hyperparameters": hps,
                "hosts": [HOST],
                "current_host": HOST,
                "channel_input_dirs": {k: str(v) for k, v in channels.items()},
            }
        ),  # fmt: skip
        **{f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()},
    }
    return env, [env["SM_USER_ENTRY_POINT"], *user_argv(hps)]


def run(cfg: DictConfig, request: Dict[str, Any], job: JobPlan, root: Path) -> Dict[str, Any]:
    """Run the job as its container would, with ``root`` as /opt/ml; return a DescribeTrainingJob-shaped
    description (its model artifact is ``root/output/model.tar.gz``)."""
    env, argv = _layout(root, request, job)
    python = cfg.target.python or sys.executable
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "MLFLOW_", "KX_"))}
    started = time.monotonic()
    print(f"rehearsing {request['TrainingJobName']} in {root}: {python} {' '.join(argv)}", file=sys.stderr)
    proc = subprocess.Popen([python, *argv], cwd=root / "code", env={**base_env, **env, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    code = proc.wait()
    seconds = int(time.monotonic() - started)
    log = "".join(lines)
    (root / "output" / "rehearsal.log").write_text(log)
    failure = root / "output" / "failure"
    description = {
        "TrainingJobName": request["TrainingJobName"],
        "TrainingJobStatus": "Completed" if code == 0 else "Failed",
        "SecondaryStatus": "Completed" if code == 0 else "Failed",
        "HyperParameters": request.get("HyperParameters", {}),
        "AlgorithmSpecification": request["AlgorithmSpecification"],
        "ResourceConfig": request["ResourceConfig"],
        "FinalMetricDataList": [
            {"MetricName": k, "Value": v}
            for k, v in scrape_metrics(
                log, request["AlgorithmSpecification"].get("MetricDefinitions", [])
            ).items()
        ],  # fmt: skip
        "BillableTimeInSeconds": seconds,
        "ModelArtifacts": {"S3ModelArtifacts": str(_tar_model(root))},
    }
    if code != 0:
        description["FailureReason"] = failure.read_text() if failure.is_file() else f"exit code {code}"
    return description


def _tar_model(root: Path) -> Path:
    """``output/model.tar.gz``, as SageMaker uploads /opt/ml/model after the job."""
    path = root / "output" / "model.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for item in sorted((root / "model").iterdir()):
            tar.add(item, arcname=item.name)
    return path
