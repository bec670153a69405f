"""Following a job through the states moto skips (it completes jobs at once): botocore's Stubber
answers DescribeTrainingJob with responses validated against the same service model."""

import datetime
import io

import boto3
from botocore.stub import Stubber

from kx.sagemaker.job_watch import summary, wait


def describe(status: str, secondary: str, **extra) -> dict:
    now = datetime.datetime(2026, 11, 26, tzinfo=datetime.timezone.utc)
    return {
        "TrainingJobName": "kx-tensorflow-ab12-20261126120000",
        "TrainingJobArn": "arn:aws:sagemaker:eu-west-1:111122223333:training-job/kx-tensorflow-ab12-20261126120000",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://bucket/kx/output/job/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": now,
        "HyperParameters": {"train.epochs": "5", "sagemaker_program": "train.py"},
        **extra,
    }


def test_wait_shows_each_status_until_the_job_ends_and_summarises_it():
    sm = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    name = {"TrainingJobName": "kx-tensorflow-ab12-20261126120000"}
    with Stubber(sm) as stub:
        stub.add_response("describe_training_job", describe("InProgress", "Starting"), name)
        stub.add_response("describe_training_job", describe("InProgress", "Training"), name)
        stub.add_response(
            "describe_training_job",
            describe(
                "Failed",
                "Failed",
                FailureReason="Unknown hyperparameter --train.learning_rat; nearest valid keys: "
                "train.learning_rate",
                BillableTimeInSeconds=61,
                FinalMetricDataList=[
                    {"MetricName": "val_acc", "Value": 0.5, "Timestamp": datetime.datetime(2026, 1, 1)}
                ],
            ),
            name,
        )
        out = io.StringIO()
        final = wait(sm, name["TrainingJobName"], poll_s=0, out=out)
        stub.assert_no_pending_responses()
    lines = out.getvalue().splitlines()
    assert [line.split(": ", 1)[1].rsplit(" (", 1)[0] for line in lines] == [
        "InProgress / Starting",
        "InProgress / Training",
        "Failed / Failed",
    ]
    job = summary(final)
    assert job["status"] == "Failed" and job["failure_reason"].startswith("Unknown hyperparameter")
    assert job["final_metrics"] == {"val_acc": 0.5} and job["billable_seconds"] == 61
    assert job["hyperparameters"] == {"train.epochs": "5"}
