"""``status``/``stop`` on training and tuning jobs and following a tuning job, through the states and
calls moto lacks: botocore's Stubber answers with responses validated against the service model."""

import datetime
import io

import boto3
import pytest
from botocore.stub import Stubber

from kx.sagemaker import launch_cli, tuning_jobs

NAME = "kx-tensorflow-ab12-261128-090000"
NOW = datetime.datetime(2026, 11, 28, tzinfo=datetime.timezone.utc)


def client():
    return boto3.client(
        "sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def tuning(status: str, completed: int = 0, running: int = 0, best: float = None) -> dict:
    description = {
        "HyperParameterTuningJobName": NAME,
        "HyperParameterTuningJobArn": f"arn:aws:sagemaker:eu-west-1:111122223333:hyper-parameter-tuning-job/{NAME}",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "ResourceLimits": {"MaxParallelTrainingJobs": 2},
        },
        "HyperParameterTuningJobStatus": status,
        "CreationTime": NOW,
        "TrainingJobStatusCounters": {
            "Completed": completed,
            "InProgress": running,
            "RetryableError": 0,
            "NonRetryableError": 1,
            "Stopped": 0,
        },
        "ObjectiveStatusCounters": {"Succeeded": completed, "Pending": running, "Failed": 0},
    }
    if best is not None:
        description["BestTrainingJob"] = {
            "TrainingJobName": f"{NAME}-001-abcd1234",
            "TrainingJobArn": "arn:aws:sagemaker:eu-west-1:1:training-job/x",
            "CreationTime": NOW,
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {"model.dropout": "0.2"},
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "best_val_acc", "Value": best},
        }
    return description


TRAINING = {
    "TrainingJobName": "kx-job",
    "TrainingJobArn": "arn:aws:sagemaker:eu-west-1:1:training-job/kx-job",
    "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"},
    "TrainingJobStatus": "InProgress",
    "SecondaryStatus": "Training",
    "AlgorithmSpecification": {"TrainingInputMode": "File"},
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    "CreationTime": NOW,
}


def not_found(stub: Stubber, operation: str, code: str, message: str) -> None:
    stub.add_client_error(operation, service_error_code=code, service_message=message, http_status_code=400)


def test_following_a_tuning_job_shows_trials_and_best_and_ctrl_c_leaves_it_running(monkeypatch):
    sm, out = client(), io.StringIO()
    sleeps = iter([None, KeyboardInterrupt()])

    def sleep(seconds):
        raised = next(sleeps)
        if raised:
            raise raised

    monkeypatch.setattr(tuning_jobs.time, "sleep", sleep)
    with Stubber(sm) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", tuning("InProgress", 0, 2))
        stub.add_response("describe_hyper_parameter_tuning_job", tuning("InProgress", 3, 1, best=0.9123))
        assert tuning_jobs.follow(sm, NAME, poll_s=1, out=out) is None
    lines = out.getvalue().strip().splitlines()
    assert lines[0].startswith(f"{NAME}: InProgress  trials 0 completed, 2 running, 1 failed, 0 stopped  (0m")
    assert "trials 3 completed, 1 running, 1 failed, 0 stopped  best best_val_acc=0.9123" in lines[1]
    assert f"keeps running on SageMaker: follow it with `python launch.py status {NAME}`" in lines[-1]
    assert f"`python launch.py stop {NAME}`" in lines[-1]


def test_status_and_stop_find_tuning_and_training_jobs_by_name(capsys):
    sm = client()
    with Stubber(sm) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", tuning("InProgress", 1, 1, best=0.8))
        stub.add_response("stop_hyper_parameter_tuning_job", {}, {"HyperParameterTuningJobName": NAME})
        not_found(
            stub,
            "describe_hyper_parameter_tuning_job",
            "ResourceNotFound",
            "Amazon SageMaker can't find a tuning job",
        )
        stub.add_response("describe_training_job", TRAINING, {"TrainingJobName": "kx-job"})
        stub.add_response("stop_training_job", {}, {"TrainingJobName": "kx-job"})
        stub.add_response("describe_hyper_parameter_tuning_job", tuning("Completed", 4, best=0.85))
        assert launch_cli.stop(sm, NAME) == 0
        assert launch_cli.stop(sm, "kx-job") == 0
        assert launch_cli.status(sm, NAME) == 0
        stub.assert_no_pending_responses()
    out, err = capsys.readouterr()
    assert f"stopping tuning job {NAME}" in err and "stopping training job kx-job" in err
    assert (
        out.startswith(f"{NAME}: Completed  trials 4 completed, 0 running, 1 failed")
        and "best_val_acc=0.8500" in out
    )


def test_an_unknown_job_is_one_clear_error():
    sm = client()
    with Stubber(sm) as stub:
        not_found(stub, "describe_hyper_parameter_tuning_job", "ResourceNotFound", "not found")
        not_found(stub, "describe_training_job", "ValidationException", "Requested resource not found.")
        with pytest.raises(launch_cli.NoSuchJob, match="No training or tuning job named 'kx-nothing'"):
            launch_cli.status(sm, "kx-nothing")


def test_ctrl_c_while_waiting_for_a_training_job_leaves_it_running(monkeypatch):
    from kx.sagemaker import job_watch

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(job_watch.time, "sleep", interrupt)
    sm, out = client(), io.StringIO()
    with Stubber(sm) as stub:
        stub.add_response("describe_training_job", TRAINING, {"TrainingJobName": "kx-job"})
        assert job_watch.wait(sm, "kx-job", poll_s=1, out=out) is None
    assert (
        "training job kx-job keeps running on SageMaker: follow it with `python launch.py status kx-job`"
        in (out.getvalue())
    )
