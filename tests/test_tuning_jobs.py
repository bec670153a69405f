"""Tuning jobs through launch.py: the dry-run request, the public SDK route it is built by, submission
to a local moto server, and its trials logged to a real MLflow store (twice, without duplicates)."""

import datetime
import io
import json
import tarfile
from pathlib import Path

import boto3
import pytest
import regex

from kx.run_config import compose
from kx.sagemaker.tuning_results import trial_number
from tests.conftest import train
from tests.helpers.moto import BUCKET, REGION, ROLE, SAGEMAKER, launch
from tests.helpers.sagemaker_api import PartlyStubbed

QUICK = ["sweep=quick", "dataset=digits", "model=mlp", "train.epochs=2"]
TOOLKIT_CHATTER = (
    "Requirement already satisfied",
    "Failed to parse hyperparameter",
    "SM_",
    "absl::InitializeLog",
)


def test_dry_run_prints_the_validated_tuning_request_offline(launch_here):
    proc = launch_here(
        *SAGEMAKER,
        *QUICK,
        "sweep.pruner=median",
        "sweep.seed=3",
        "target.spot=true",
        "target.warm_start=[kx-tensorflow-ab12-261101-1200]",
        "--dry-run",
    )
    assert proc.returncode == 0, proc.stderr
    request = json.loads(proc.stdout)
    assert regex.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}", request["HyperParameterTuningJobName"])
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian" and config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["RandomSeed"] == 3 and config["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 6
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "best_val_acc"}
    ranges = config["ParameterRanges"]
    assert {
        "Name": "train.learning_rate",
        "MinValue": "0.005",
        "MaxValue": "0.2",
        "ScalingType": "Logarithmic",
    } in ranges["ContinuousParameterRanges"]
    assert ranges["CategoricalParameterRanges"] == [
        {"Name": "model.dense_units", "Values": ["32", "64", "128"]}
    ]
    definition = request["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert {k: static[k] for k in ("backend", "model", "dataset", "train.epochs")} == {
        "backend": "tensorflow",
        "model": "mlp",
        "dataset": "digits",
        "train.epochs": "2",
    }
    assert not {"train.learning_rate", "model.dense_units", "model.dropout"} & set(static)
    assert not any(k.startswith("sweep") for k in static)
    objective = {m["Name"]: m["Regex"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]}
    assert objective["best_val_acc"] == r"\b(?:best_)?val_acc=([0-9.]+)"
    assert {"Key": "kx:sweep", "Value": "quick"} in request["Tags"]
    assert definition["EnableManagedSpotTraining"] is True and definition["CheckpointConfig"]["S3Uri"]
    assert request["WarmStartConfig"] == {
        "WarmStartType": "IdenticalDataAndAlgorithm",
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "kx-tensorflow-ab12-261101-1200"}],
    }


def test_the_local_fashion_sweep_file_is_a_hyperband_tuning_job_with_its_hour(launch_here):
    proc = launch_here(*SAGEMAKER, "sweep=fashion_local", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Hyperband" and config["ResourceLimits"]["MaxRuntimeInSeconds"] == 3600
    assert config["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 2, "MaxResource": 18}}


def test_a_sweep_sagemaker_cannot_run_fails_before_any_upload(launch_here, aws):  # noqa: F811
    proc = launch_here(*SAGEMAKER, *QUICK, "sweep.sampler=grid", endpoint=aws["endpoint"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(
        "kx: error: sweep.params.train.learning_rate: sweep.sampler=grid takes choice"
    )
    assert aws["s3"].list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    assert aws["sm"].list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"] == []


def test_requests_are_those_the_sdks_own_pipeline_steps_build(tmp_path, monkeypatch):
    """Pins the public route kx relies on: the request left in a PipelineSession's context by
    ``ModelTrainer.train()``/``HyperparameterTuner.tune()`` is ``TrainingStep``/``TuningStep.arguments``."""
    from kx.sagemaker import job_request, tuning_request

    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)  # sagemaker.mlops needs a region at import
    from sagemaker.mlops.workflow.steps import TrainingStep, TuningStep

    cfg = compose(
        [
            "target=sagemaker",
            f"target.role={ROLE}",
            f"target.bucket={BUCKET}",
            f"target.region={REGION}",
            *QUICK,
        ],
        with_hydra=True,
    )
    plan = job_request.plan(cfg, QUICK[1:], tmp_path, BUCKET)
    boto_session = boto3.Session(region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")

    def trainer():
        session = job_request.pipeline_session(boto_session, {"SchemaVersion": "1.0"}, BUCKET)
        return session, job_request.model_trainer(cfg, plan, session)

    session, ours = trainer()
    request = job_request.request(session, ours.train(wait=False, logs=False), "TrainingJobName", "kx-job-1")
    step = TrainingStep(name="train", step_args=trainer()[1].train(wait=False, logs=False))
    assert request == {"TrainingJobName": "kx-job-1", **step.arguments}
    spec = tuning_request.translate(cfg)
    session, ours = trainer()
    request = tuning_request.request(spec, ours, session, "kx-tuning")
    step = TuningStep(
        name="tune", step_args=tuning_request.tuner(spec, trainer()[1], "kx-tuning").tune(wait=False)
    )
    assert request == {
        "HyperParameterTuningJobName": request["HyperParameterTuningJobName"],
        **step.arguments,
    }


def output_tar(folder: Path) -> bytes:
    """An ``output.tar.gz`` as SageMaker makes from /opt/ml/output/data, where train.py writes its run
    folder's files in a job."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def start_trial(sm, tuning: dict, number: int, values: dict) -> str:
    """Create the training job SageMaker starts for one trial (moto starts none)."""
    definition = tuning["TrainingJobDefinition"]
    name = f"{tuning['HyperParameterTuningJobName']}-{number:03d}-0000abcd"
    sm.create_training_job(
        TrainingJobName=name,
        HyperParameters={**definition["StaticHyperParameters"], **values},
        AlgorithmSpecification={k: v for k, v in definition["AlgorithmSpecification"].items()},
        RoleArn=definition["RoleArn"],
        OutputDataConfig=definition["OutputDataConfig"],
        ResourceConfig=definition["ResourceConfig"],
        StoppingCondition=definition["StoppingCondition"],
    )
    return name


def summary(name: str, values: dict, value: float) -> dict:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:111122223333:training-job/{name}",
        "CreationTime": datetime.datetime(2026, 11, 28, tzinfo=datetime.timezone.utc),
        "TrainingJobStatus": "Completed",
        "TunedHyperParameters": values,
        "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "best_val_acc", "Value": value},
    }


def listed(sm, tuning_name: str, summaries: list) -> None:
    sm.stubber.add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {"TrainingJobSummaries": summaries},
        {"HyperParameterTuningJobName": tuning_name},
    )


@pytest.mark.slow
def test_tuning_job_on_moto_and_its_trials_in_mlflow_like_local_runs(
    tmp_path, aws, monkeypatch, mlflow_store
):  # noqa: F811
    from mlflow.tracking import MlflowClient

    from kx.sagemaker.tuning_jobs import results

    proc = launch(tmp_path, *SAGEMAKER, *QUICK, "--no-wait", endpoint=aws["endpoint"])
    assert proc.returncode == 0, proc.stderr
    name = proc.stdout.strip().splitlines()[-1]
    tuning = aws["sm"].describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert (
        tuning["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
        == "best_val_acc"
    )
    status = launch(tmp_path, "status", name, endpoint=aws["endpoint"])
    assert status.returncode == 0 and status.stdout.startswith(f"{name}: "), status.stderr
    values = [
        {"train.learning_rate": "0.05", "model.dropout": "0.1", "model.dense_units": "64"},
        {"train.learning_rate": "0.01", "model.dropout": "0.3", "model.dense_units": "32"},
    ]
    # the first trial's output holds the metrics.json train.py really writes for its settings
    local = train(tmp_path, "sweep=quick", *QUICK[1:], *(f"{k}={v}" for k, v in values[0].items()))
    assert local.returncode == 0, local.stderr
    (metrics,) = tmp_path.glob("outputs/*/*/metrics.json")
    trials = [start_trial(aws["sm"], tuning, i + 1, v) for i, v in enumerate(values)]
    aws["s3"].put_object(
        Bucket=BUCKET, Key=f"kx/output/{trials[0]}/output/output.tar.gz", Body=output_tar(metrics.parent)
    )

    monkeypatch.chdir(tmp_path)
    cfg = compose(["target=sagemaker", f"tracking.uri={mlflow_store}"])
    sm = PartlyStubbed(
        aws["sm"],
        aws["session"].client("sagemaker", endpoint_url=aws["endpoint"]),
        "list_training_jobs_for_hyper_parameter_tuning_job",
    )
    listed(sm, name, [summary(trials[0], values[0], 0.91)])
    assert results(cfg, sm, aws["s3"], name) == 0
    listed(sm, name, [summary(t, v, x) for t, v, x in zip(trials, values, (0.91, 0.87))])
    assert results(cfg, sm, aws["s3"], name) == 0  # again: the new trial only
    sm.stubber.assert_no_pending_responses()

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("kx").experiment_id])
    (parent,) = [
        r
        for r in runs
        if r.data.tags.get("kx.sagemaker.tuning_job") == name and "mlflow.parentRunId" not in r.data.tags
    ]
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["kx.sagemaker.job_name"] for r in nested) == trials  # each once
    children = {r.data.tags["kx.sagemaker.job_name"]: r for r in nested}
    assert parent.data.metrics["best_val_acc"] == 0.91 and parent.data.tags["kx.best_job_name"] == trials[0]
    assert parent.data.tags["kx.best.model.dense_units"] == "64" and parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "best_trial.yaml",
        "optimization_history.png",
    }
    (local_run,) = [r for r in runs if r.data.tags.get("kx.target") == "local"]
    child = children[trials[0]]
    assert set(child.data.params) == set(local_run.data.params)  # column for column
    untuned = [{k: v for k, v in r.data.params.items() if k not in values[0]} for r in (child, local_run)]
    assert untuned[0] == untuned[1]  # the same values too: no /opt/ml/checkpoints against None
    assert {k: child.data.params[k] for k in values[0]} == values[0]
    assert set(child.data.metrics) - {"billable_seconds"} == set(local_run.data.metrics)
    for key in ("val_acc", "loss"):  # the per-epoch curves, epoch by epoch
        curve = [(m.step, m.value) for m in client.get_metric_history(child.info.run_id, key)]
        assert curve == [(m.step, m.value) for m in client.get_metric_history(local_run.info.run_id, key)]
    assert child.data.metrics["best_val_acc"] == local_run.data.metrics["best_val_acc"]
    assert child.data.tags["kx.sagemaker.instance_type"] == "ml.m5.xlarge" and child.info.status == "FINISHED"
    assert child.data.tags["kx.target"] == "sagemaker"
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert artifacts == {a.path for a in client.list_artifacts(local_run.info.run_id)} - {
        "model"
    }  # model: in S3


def test_a_tuning_jobs_trials_are_numbered_as_sagemaker_names_them():
    assert trial_number("kx-tensorflow-cf40-261203-233834-002-45cf234a", place=0) == 2
    assert trial_number("a-job-named-otherwise", place=4) == 5  # else its place, from 1 too


@pytest.mark.slow
def test_two_trial_rehearsal_on_digits_logs_a_tuning_job(tmp_path):
    from mlflow.tracking import MlflowClient

    proc = launch(
        tmp_path,
        "target=sagemaker_local",
        *QUICK,
        "train.epochs=1",
        "sweep.budget.trials=2",
        "sweep.seed=1",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("kx").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and parent.data.tags["kx.sweeper"] == "sagemaker"
    # the console: one line per job state, epoch and trial; the toolkit's output is in each job's log
    console = (proc.stdout + proc.stderr).splitlines()
    assert not [line for line in console if any(word in line for word in TOOLKIT_CHATTER)]
    assert len(console) < 40, "\n".join(console)
    numbers = [line.split(":")[0] for line in console if regex.match(r"trial \d+:", line)]
    header = next(i for i, line in enumerate(console) if line.startswith("trial  "))  # the report's table
    rows = [line.split()[0] for line in console[header + 1 : header + 3]]
    # SageMaker's numbers, as in the jobs' names (-001, -002), on the console and in the table
    assert numbers == ["trial 1", "trial 2"] and rows == ["1", "2"]
    experiment = parent.info.experiment_id
    assert console[-2] == (
        f"MLflow tuning job: http://127.0.0.1:5000/#/experiments/{experiment}/runs/{parent.info.run_id}"
        "?workflowType=machine_learning"
    )
    assert console[-1].startswith("  (serve it with: python launch.py ui --port 5000 tracking.uri=sqlite:")
    assert parent.data.tags["kx.target"] == "sagemaker_local" and parent.info.status == "FINISHED"
    root = tmp_path / "outputs" / "sagemaker_local" / parent.data.tags["kx.sagemaker.tuning_job"]
    for child in children:
        job = child.data.tags["kx.sagemaker.job_name"]
        log = (root / job / "output" / "rehearsal.log").read_text()
        # the objective as SageMaker reads it from the log: the last match of its regex
        objective = float(regex.findall(r"\b(?:best_)?val_acc=([0-9.]+)", log)[-1])
        assert child.data.metrics["best_val_acc"] == pytest.approx(objective, abs=1e-4)
        assert "billable_seconds" not in child.data.metrics  # a rehearsal costs nothing
        assert len(client.get_metric_history(child.info.run_id, "val_acc")) == 1  # one epoch
        assert child.data.tags["kx.sweep.name"] == "quick" and child.info.status == "FINISHED"
        assert "sweep.name" not in child.data.params and "train.checkpoint_dir" not in child.data.params
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"config.yaml", "metrics.json", "training_curves.png", "model"} <= artifacts  # as a local run
    best = max(children, key=lambda r: r.data.metrics["best_val_acc"])
    assert parent.data.tags["kx.best_run_id"] == best.info.run_id
    # the same sweep report as a local sweep's parent: every trial on one page, linked from its description
    assert "parallel_coordinates.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert parent.data.tags["mlflow.note.content"].startswith(
        "[Compare the 2 trials side by side](#/compare-runs"
    )
    assert parent.data.metrics["best_val_acc"] == pytest.approx(best.data.metrics["best_val_acc"], abs=1e-4)
