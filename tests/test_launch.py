"""launch.py against SageMaker's real API shape: requests validated by botocore, sent to a local moto server."""

import importlib.abc
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conftest import PROJECT_DIR
from tests.helpers.moto import BUCKET, CLOSED, ROLE, SAGEMAKER, aws_env, launch


def dry_run(launch_here, *args: str) -> dict:
    proc = launch_here(*SAGEMAKER, *args, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_dry_run_prints_the_full_request_without_any_network(launch_here):
    request = dry_run(launch_here, "train.epochs=5", "model.dropout=0.4")
    spec = request["AlgorithmSpecification"]
    assert spec["TrainingImage"].endswith(
        ".dkr.ecr.eu-west-1.amazonaws.com/tensorflow-training:2.19-cpu-py312"
    )
    hps = request["HyperParameters"]
    assert {k: hps[k] for k in ("backend", "model", "dataset", "train.epochs", "model.dropout")} == {
        "backend": "tensorflow",
        "model": "cnn",
        "dataset": "fashion_mnist",
        "train.epochs": "5",
        "model.dropout": "0.4",
    }
    assert hps["sagemaker_program"] == "train.py" and hps["model_dir"].startswith(f"s3://{BUCKET}/kx/output/")
    assert hps["sagemaker_submit_directory"].startswith(f"s3://{BUCKET}/kx/code/")
    assert not any(k.startswith("target") for k in hps)
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]
    }
    assert set(channels) == {"training", "validation"}
    assert {m["Name"]: m["Regex"] for m in spec["MetricDefinitions"]}["val_acc"] == r"\bval_acc=([0-9.]+)"
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    assert (
        request["RoleArn"] == ROLE
        and request["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/kx/output"
    )
    assert request["CheckpointConfig"]["LocalPath"] == hps["train.checkpoint_dir"] == "/opt/ml/checkpoints"


def test_mxnet_spot_job_uses_the_mxnet_image_and_checkpoints(launch_here):
    request = dry_run(
        launch_here,
        "backend=mxnet",
        "dataset=digits",
        "target.spot=true",
        "target.max_runtime_s=3600",
        "target.instance_type=ml.c5.2xlarge",
        "target.instance_count=2",
    )
    assert request["AlgorithmSpecification"]["TrainingImage"].endswith("/mxnet-training:1.9-cpu-py38")
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert request["CheckpointConfig"]["S3Uri"].startswith(f"s3://{BUCKET}/kx/checkpoints/kx-mxnet-")
    assert request["ResourceConfig"]["InstanceCount"] == 2
    assert "model_dir" not in request["HyperParameters"]  # only the TensorFlow framework adds it
    # two hosts: the MXNet container starts its parameter servers (TensorFlow jobs need no flag)
    assert request["HyperParameters"]["sagemaker_parameter_server_enabled"] == "true"


def test_invalid_request_fails_with_the_service_models_message_before_upload(launch_here, aws):
    proc = launch_here(
        *SAGEMAKER,
        "dataset=digits",
        "target.instance_type=ml.bogus",
        "target.base_job_name=kx.v2",
        endpoint=aws["endpoint"],
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("kx: error: The CreateTrainingJob request is invalid: ")
    assert "ResourceConfig.InstanceType='ml.bogus' is not one of ml.m4.xlarge" in proc.stderr
    assert "TrainingJobName='kx.v2-tensorflow-" in proc.stderr and "does not match the pattern" in proc.stderr
    assert aws["s3"].list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    assert aws["sm"].list_training_jobs()["TrainingJobSummaries"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [*SAGEMAKER, "target.bucket=null", "--dry-run"],
            "launch.py needs 1 more setting(s): target.bucket (--dry-run",
        ),
        (
            [*SAGEMAKER, "target.role=null", "--dry-run"],
            "launch.py needs 1 more setting(s): target.role (the IAM",
        ),
        ([*SAGEMAKER, "backend=jax", "--dry-run"], "backend=jax has no SageMaker framework training image"),
        (["target=local"], "target=local is not launched: launch.py runs target=sagemaker"),
        (
            [*SAGEMAKER, "target.colour=red"],
            "Unknown config key target.colour; did you mean target.role, target.poll_s or target.spot?",
        ),
    ],
)
def test_configuration_errors_are_one_line(launch_here, args, message):
    proc = launch_here(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"kx: error: {message}") and proc.stderr.count("\n") == 1


@pytest.mark.slow
def test_launch_py_process_ends_a_configuration_error_in_one_line(tmp_path):
    """The cases above end to end: ``python launch.py`` itself, exit code 2 and its one line."""
    proc = launch(tmp_path, *SAGEMAKER, "backend=jax", "--dry-run")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("kx: error: backend=jax has no SageMaker framework training image")
    assert proc.stderr.count("\n") == 1


@pytest.mark.slow  # the whole job on moto: its data uploaded (twice), waited for, logged to MLflow
def test_submit_uploads_once_runs_the_job_and_logs_it_to_mlflow(tmp_path, launch_here, aws, mlflow_store):
    proc = launch_here(*SAGEMAKER, "train.epochs=4", endpoint=aws["endpoint"])
    assert proc.returncode == 0, proc.stderr
    name = proc.stdout.strip().splitlines()[-1]
    job = aws["sm"].describe_training_job(TrainingJobName=name)
    assert job["TrainingJobStatus"] == "Completed"
    assert job["HyperParameters"]["train.epochs"] == "4" and job["RoleArn"] == ROLE
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("tensorflow-training:2.19-cpu-py312")
    keys = {o["Key"] for o in aws["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]}
    code_key = job["HyperParameters"]["sagemaker_submit_directory"].split(f"{BUCKET}/", 1)[1]
    assert code_key in keys
    for channel in job["InputDataConfig"]:
        prefix = channel["DataSource"]["S3DataSource"]["S3Uri"].split(f"{BUCKET}/", 1)[1]
        assert f"{prefix}/{channel['ChannelName']}.npz" in keys
    assert proc.stderr.count("uploaded: s3://") == 3
    assert f"{name}: Completed" in proc.stderr

    again = launch_here(*SAGEMAKER, "train.epochs=4", endpoint=aws["endpoint"])
    assert again.returncode == 0 and again.stderr.count("already in S3, skipped") == 3

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("kx").experiment_id],
        filter_string=f"tags.`kx.sagemaker.job_name` = '{name}'",
    )
    (run,) = runs
    assert run.data.tags["kx.target"] == "sagemaker" and run.data.tags["kx.sagemaker.status"] == "Completed"
    assert run.data.params["train.epochs"] == "4" and "sagemaker_program" not in run.data.params
    assert run.data.tags["kx.sagemaker.model_artifacts"] == job["ModelArtifacts"]["S3ModelArtifacts"]
    assert run.info.status == "FINISHED"


def test_no_wait_then_status_and_logs_reattach(launch_here, aws):
    proc = launch_here(*SAGEMAKER, "dataset=digits", "model=mlp", "--no-wait", endpoint=aws["endpoint"])
    assert proc.returncode == 0, proc.stderr
    name = proc.stdout.strip()
    assert name.startswith("kx-tensorflow-") and "Completed" not in proc.stderr
    status = launch_here("status", name, endpoint=aws["endpoint"])
    assert status.returncode == 0 and status.stdout.startswith(f"{name}: Completed")
    logs_client = aws["session"].client("logs", endpoint_url=aws["endpoint"])
    logs_client.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    stream = f"{name}/algo-1-1764158400"
    logs_client.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)
    lines = [
        "[kx][INFO] - epoch=1 loss=0.5 acc=0.8 val_loss=0.4 val_acc=0.85",
        "[kx][INFO] - best_val_acc=0.8500",
    ]
    logs_client.put_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": m} for m in lines],
    )
    logs = launch_here("logs", name, "target.poll_s=0.2", endpoint=aws["endpoint"])
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == lines
    missing = launch_here("status", "kx-no-such-job", endpoint=aws["endpoint"])
    assert missing.returncode == 2 and missing.stderr.startswith("kx: error: ")


@pytest.mark.slow  # what a process imports: only a process of its own shows it
def test_launch_imports_no_training_framework_and_help_no_sdk(tmp_path):
    def imported(*args: str) -> set:
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", str(PROJECT_DIR / "launch.py"), *args],
            cwd=tmp_path,
            env=aws_env(CLOSED),
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}

    dry = imported(*SAGEMAKER, "backend=mxnet", "--dry-run")
    assert "sagemaker" in dry and not dry & {"tensorflow", "keras", "mxnet", "torch", "jax"}
    assert "sagemaker" not in imported("--help")


class Absent(importlib.abc.MetaPathFinder):
    """Imports of ``package`` and its modules fail as where it is not installed."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] == self.package:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


@pytest.mark.parametrize("missing", ["boto3", "sagemaker"])
def test_without_the_sagemaker_extra_one_line_says_what_to_install(launch_here, monkeypatch, missing):
    """launch.py's lazy imports of the extra's packages, in process (the process: below)."""
    for name in [m for m in sys.modules if m.split(".")[0] == missing]:
        monkeypatch.delitem(sys.modules, name)  # restored when the test ends
    monkeypatch.setattr(sys, "meta_path", [Absent(missing), *sys.meta_path])
    proc = launch_here(*SAGEMAKER, "--dry-run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == (
        f'kx: error: launch.py needs {missing}, which is not installed: pip install -e ".[sagemaker]"\n'
    )


@pytest.mark.slow  # launch.py's own imports need neither package: only a process of its own shows it
@pytest.mark.parametrize("missing", ["boto3", "sagemaker"])
def test_launch_py_without_the_sagemaker_extra_one_line_says_what_to_install(tmp_path, missing):
    shim = tmp_path / "shim" / missing  # a package that is absent as far as Python can tell
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(f"raise ModuleNotFoundError('no {missing}', name={missing!r})")
    path = os.pathsep.join([str(shim.parent), os.environ["PYTHONPATH"]])
    proc = launch(tmp_path, *SAGEMAKER, "--dry-run", env={"PYTHONPATH": path})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == (
        f'kx: error: launch.py needs {missing}, which is not installed: pip install -e ".[sagemaker]"\n'
    )
