"""launch.py deploy/undeploy/predict against SageMaker's API (a local moto server; botocore's Stubber for
what moto lacks), and the model archive's inference code run as the inference images would run it."""

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import boto3
import numpy as np
import pytest
from botocore.stub import Stubber

from kx.serving.deploy import image_version
from tests.conftest import PROJECT_DIR, train
from tests.helpers.moto import REGION, launch, moto_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("mxnet") is None, reason="mxnet missing"),
]
ROLE = "arn:aws:iam::111122223333:role/kx-test"
BUCKET = "kx-deploy-test"
TARGET = [f"target.role={ROLE}", f"target.bucket={BUCKET}", f"target.region={REGION}"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny tensorflow and a tiny mxnet model (digits, mlp, 1 epoch), each with its own MLflow store."""
    runs = {}
    for backend in ("tensorflow", "mxnet"):
        folder = tmp_path_factory.mktemp(backend)
        proc = train(
            folder, f"backend={backend}", "model=mlp", "dataset=digits", "train.epochs=1", "hydra.run.dir=run"
        )
        assert proc.returncode == 0, proc.stderr
        runs[backend] = folder
    return runs


@pytest.fixture(scope="module")
def aws():
    with moto_server() as url:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        s3 = session.client("s3", endpoint_url=url)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield {"url": url, "s3": s3, "sm": session.client("sagemaker", endpoint_url=url)}


def archive_of(aws, endpoint: str) -> tarfile.TarFile:
    """The model archive an endpoint serves, read back through the API."""
    config = aws["sm"].describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    model = aws["sm"].describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0][
        "ModelName"
    ]
    url = aws["sm"].describe_model(ModelName=model)["PrimaryContainer"]["ModelDataUrl"]
    bucket, key = url[len("s3://") :].split("/", 1)
    return tarfile.open(fileobj=io.BytesIO(aws["s3"].get_object(Bucket=bucket, Key=key)["Body"].read()))


def job_archive(folder: Path) -> bytes:
    """What a SageMaker training job leaves in model.tar.gz: SM_MODEL_DIR, i.e. the run's model/ folder."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path in (folder / "run" / "model").iterdir():
            tar.add(path, arcname=path.name)
    return out.getvalue()


def test_the_inference_image_is_the_release_that_exported_the_model_or_the_nearest_served():
    assert image_version("tensorflow", "2.19.0") == "2.19"  # the TensorFlow training image's
    assert image_version("tensorflow", "2.17.1") == "2.18"  # not served: the nearest, newer on a tie
    assert image_version("tensorflow", "2.99.0") == max(
        (image_version("tensorflow", f"2.{minor}.0") for minor in range(16, 30)),
        key=lambda v: int(v.split(".")[1]),
    )
    assert image_version("mxnet", "1.9.1") == "1.9"


def test_deploy_a_training_job_on_tensorflow_serving_then_undeploy(trained, aws, tmp_path):
    aws["sm"].create_training_job(
        TrainingJobName="kx-digits-job",
        RoleArn=ROLE,
        HyperParameters={"backend": '"tensorflow"'},
        AlgorithmSpecification={"TrainingImage": "tf", "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/jobs"},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
    )
    aws["s3"].put_object(
        Bucket=BUCKET, Key="jobs/kx-digits-job/output/model.tar.gz", Body=job_archive(trained["tensorflow"])
    )
    proc = launch(
        tmp_path, "deploy", "kx-digits-job", *TARGET, "--endpoint", "kx-digits", endpoint=aws["url"]
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "kx-digits: InService"
    model = aws["sm"].describe_model(ModelName="kx-digits")["PrimaryContainer"]
    # the TensorFlow Serving release of the TensorFlow that exported the model (or the nearest served)
    exported_with = json.loads(
        next((trained["tensorflow"] / "run" / "model").glob("*-contract.json")).read_text()
    )
    release = image_version("tensorflow", exported_with["versions"]["tensorflow"])
    assert model["Image"].startswith(
        f"763104351884.dkr.ecr.eu-west-1.amazonaws.com/tensorflow-inference:{release}-cpu"
    )
    names = set(archive_of(aws, "kx-digits").getnames())
    assert {
        "model/1/saved_model.pb",
        "model-contract.json",
        "code/inference.py",
        "code/kx/serving/contract.py",
    } <= names

    proc = launch(tmp_path, "undeploy", "kx-digits", f"target.region={REGION}", endpoint=aws["url"])
    assert proc.returncode == 0, proc.stderr
    assert aws["sm"].list_endpoints()["Endpoints"] == [] and aws["sm"].list_models()["Models"] == []
    assert aws["sm"].list_endpoint_configs()["EndpointConfigs"] == []


def test_deploy_an_mlflow_run_on_the_mxnet_image_and_predict(trained, aws):
    folder = trained["mxnet"]
    proc = launch(folder, "deploy", run_id(folder), *TARGET, "--endpoint", "kx-mx", endpoint=aws["url"])
    assert proc.returncode == 0, proc.stderr
    container = aws["sm"].describe_model(ModelName="kx-mx")["PrimaryContainer"]
    assert container["Image"].endswith("/mxnet-inference:1.9-cpu-py38")
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    # moto answers invocations with a body it is given; the archive's own code is checked further below.
    answer = {"predictions": [[0.1] * 10] * 3}
    results = {
        "region": REGION,
        "account_id": "123456789012",
        "results": [{"Body": json.dumps(answer), "ContentType": "application/json"}],
    }
    request = urllib.request.Request(
        f"{aws['url']}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps(results).encode(),
        method="POST",
    )
    urllib.request.urlopen(request)
    proc = launch(folder, "predict", "kx-mx", "--samples", "3", "--out", "grid.png", endpoint=aws["url"])
    assert proc.returncode == 0, proc.stderr
    assert "-> SageMaker endpoint kx-mx" in proc.stdout and proc.stdout.count(" true=") == 3


def run_id(folder: Path) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("kx").experiment_id])
    return run.info.run_id


HANDLERS = """
import json, sys, numpy as np
import inference, kx
assert kx.__file__.startswith(sys.argv[1]), kx.__file__
body = open(sys.argv[2], "rb").read()
if sys.argv[3] == "mxnet":
    model = inference.model_fn(sys.argv[1] + "/..")
    out, kind = inference.output_fn(inference.predict_fn(inference.input_fn(body, "application/json"), model), "application/json")
else:
    import os; os.environ["SM_MODEL_DIR"] = sys.argv[1] + "/.."
    class Context: request_content_type = "application/json"
    out = inference.input_handler(open(sys.argv[2], "rb"), Context())
assert "omegaconf" not in sys.modules
print(out)
"""


@pytest.mark.parametrize("backend", ["mxnet", "tensorflow"])
def test_the_archives_inference_code_predicts_like_kx(trained, backend, tmp_path):
    """code/inference.py from the archive, alone with its kx modules: MXNet's handlers on Python 3.8 as in
    the MXNet image, TF Serving's pre-processing feeding the SavedModel as TF Serving would."""
    from kx.serving.deploy import pack
    from kx.serving.model import load

    folder = trained[backend]
    with tarfile.open(pack(folder / "run" / "model", tmp_path / "model.tar.gz")) as tar:
        tar.extractall(tmp_path / "opt", filter="data")
    raw = np.random.default_rng(0).integers(0, 17, size=(5, 8, 8)).astype(np.uint8)
    (tmp_path / "body.json").write_text(json.dumps({"instances": raw.tolist()}))
    python = str(PROJECT_DIR / ".venv38" / "bin" / "python") if backend == "mxnet" else sys.executable
    if backend == "mxnet" and not Path(python).exists():
        pytest.skip(".venv38 (Python 3.8 with mxnet, like the MXNet image) is missing")
    code = tmp_path / "opt" / "code"
    proc = subprocess.run(
        [python, "-c", HANDLERS, str(code), str(tmp_path / "body.json"), backend],
        cwd=code,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    expected = load(folder / "run" / "model").probabilities(raw)
    if backend == "tensorflow":  # TF Serving runs the SavedModel on what input_handler prepared
        import tensorflow as tf

        served = tf.saved_model.load(str(tmp_path / "opt" / "model" / "1"))
        out = {"predictions": served.serve(tf.constant(out["instances"], tf.float32)).numpy().tolist()}
    np.testing.assert_allclose(out["predictions"], expected, atol=1e-5)


def test_deploy_a_tuning_jobs_best_training_job():
    """moto's tuning jobs have no real best job: the Stubber answers DescribeHyperParameterTuningJob."""
    from kx.serving.deploy import best_training_job

    sm = boto3.Session(region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x").client(
        "sagemaker"
    )
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_hyper_parameter_tuning_job",
            {
                "HyperParameterTuningJobName": "kx-tune",
                "HyperParameterTuningJobArn": "arn:aws:sagemaker:eu-west-1:111122223333:hyper-parameter-tuning-job/kx-tune",
                "HyperParameterTuningJobConfig": {
                    "Strategy": "Bayesian",
                    "ResourceLimits": {"MaxParallelTrainingJobs": 1},
                },
                "HyperParameterTuningJobStatus": "Completed",
                "CreationTime": "2026-01-01T00:00:00Z",
                "TrainingJobStatusCounters": {},
                "ObjectiveStatusCounters": {},
                "BestTrainingJob": {
                    "TrainingJobName": "kx-tune-003-abc",
                    "TrainingJobArn": "arn:aws:sagemaker:eu-west-1:111122223333:training-job/kx-tune-003-abc",
                    "CreationTime": "2026-01-01T00:00:00Z",
                    "TunedHyperParameters": {},
                    "TrainingJobStatus": "Completed",
                },
            },
            {"HyperParameterTuningJobName": "kx-tune"},
        )
        assert best_training_job(sm, "kx-tune") == "kx-tune-003-abc"
