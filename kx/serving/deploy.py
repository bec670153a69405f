"""``launch.py deploy`` / ``undeploy``: a kx model as a SageMaker endpoint on its framework's inference image.

The model comes from a SageMaker training job (its ``model.tar.gz``), a tuning job (its best training
job) or an MLflow run (a SageMaker job's run points at the job's archive; a local run's model is
packed here). kx repacks it in the layout the inference image expects: the export at the archive's
root (TF Serving's ``<name>/<version>/``, or MXNet's symbol, params and shapes), the contract, and
``code/inference.py`` (:mod:`kx.serving.sagemaker_inference`) with the kx modules it imports, so the
endpoint takes the dataset's own images like ``launch.py serve``. It then creates the model, endpoint
config and endpoint (the image from the SageMaker SDK's ``image_uris``, ``image_scope="inference"``) and
waits until the endpoint is InService.
"""

import io
import json
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from kx.data.files import split_s3
from kx.errors import KxError
from kx.run_config import compose
from kx.serving import contract as contracts
from kx.serving.source import RUN_ID, is_model_source, model_folder
from kx.tracking.mlflow_tracker import resolve_uri

KX_DIR = Path(__file__).resolve().parents[1]
# The kx modules code/inference.py imports (numpy only), relative to the kx package.
CODE_MODULES = (
    "__init__.py",
    "errors.py",
    "data/__init__.py",
    "data/dataset.py",
    "serving/__init__.py",
    "serving/contract.py",
)
# Inference images per backend: (framework, version when the export names none, Python); jax's
# SavedModel runs on TensorFlow Serving. The version is the exporting framework's (:func:`image_version`).
INFERENCE_IMAGES = {
    "tensorflow": ("tensorflow", "2.19", None),
    "jax": ("tensorflow", "2.19", None),
    "mxnet": ("mxnet", "1.9", "py38"),
}
MXNET_ENV = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}


@dataclass
class ModelSource:
    """Where a deployable model is: an S3 archive (a training job's) or a local model folder."""

    description: str
    archive_uri: Optional[str] = None
    folder: Optional[Path] = None


def training_job(sm: Any, name: str) -> ModelSource:
    """The model of training job ``name``, or of tuning job ``name``'s best training job."""
    from botocore.exceptions import ClientError

    try:
        job = sm.describe_training_job(TrainingJobName=name)
    except ClientError:
        return training_job(sm, best_training_job(sm, name))
    if job["TrainingJobStatus"] != "Completed":
        raise KxError(f"training job {name} is {job['TrainingJobStatus']}; only a Completed job has a model.")
    return ModelSource(f"training job {name}", archive_uri=job["ModelArtifacts"]["S3ModelArtifacts"])


def best_training_job(sm: Any, name: str) -> str:
    """The best training job of tuning job ``name``."""
    from botocore.exceptions import ClientError

    try:
        tuning = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    except ClientError:
        raise KxError(
            f"{name!r} is neither a training job nor a tuning job in this region, nor a model folder "
            "or MLflow run."
        ) from None
    best = tuning.get("BestTrainingJob", {}).get("TrainingJobName")
    if not best:
        raise KxError(
            f"tuning job {name} has no best training job yet ({tuning['HyperParameterTuningJobStatus']})."
        )
    return best


def mlflow_run(source: str, tracking_uri: Optional[str]) -> ModelSource:
    """The model of an MLflow run: its SageMaker job's archive, or its logged model fetched here."""

    run_id = (
        source if RUN_ID.match(source) else (source.split("/")[1] if source.startswith("runs:/") else None)
    )
    if run_id:
        from mlflow.tracking import MlflowClient

        tags = MlflowClient(resolve_uri(tracking_uri)).get_run(run_id).data.tags
        if tags.get("kx.sagemaker.model_artifacts"):
            return ModelSource(
                f"MLflow run {run_id} ({tags['kx.sagemaker.job_name']})",
                archive_uri=tags["kx.sagemaker.model_artifacts"],
            )
    return ModelSource(source, folder=model_folder(source, tracking_uri))


def fetch(source: ModelSource, s3: Any, work: Path) -> Path:
    """The model folder of ``source``, downloading and unpacking a job's archive into ``work``."""
    if source.folder is not None:
        return source.folder
    bucket, key = split_s3(source.archive_uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        tar.extractall(work / "model", filter="data")
    return work / "model"


def pack(model_dir: Path, out: Path) -> Path:
    """``model.tar.gz`` for the inference image: the export at the root, ``code/inference.py`` and kx's modules."""
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            if path.name != "code":
                tar.add(path, arcname=path.name)
        tar.add(KX_DIR / "serving" / "sagemaker_inference.py", arcname="code/inference.py")
        for module in CODE_MODULES:
            tar.add(KX_DIR / module, arcname=f"code/kx/{module}")
    return out


@dataclass
class Deployment:
    """Where and how to deploy: the SageMaker target's role, region, bucket and prefix, and the endpoint."""

    role: str
    region: str
    bucket: str
    prefix: str
    instance_type: str
    endpoint: str
    wait: bool = True


def endpoint_name() -> str:
    """A fresh endpoint name (SageMaker: at most 63 letters, digits and hyphens)."""
    return f"kx-{time.strftime('%Y%m%d-%H%M%S')}-{int(time.time() * 1000) % 1000:03d}"


def container(
    contract: contracts.Contract, archive_uri: str, region: str, instance_type: str
) -> Dict[str, Any]:
    """The inference image and environment for ``contract``'s backend (CreateModel's PrimaryContainer)."""
    from sagemaker.core import image_uris

    if contract.backend not in INFERENCE_IMAGES or (
        contract.backend == "jax" and "saved_model" not in contract.files
    ):
        raise KxError(
            f"backend={contract.backend} exports {', '.join(contract.files)}, which no SageMaker framework "
            "inference image serves; deploy a tensorflow, jax (with its SavedModel) or mxnet model, or "
            "serve this one with `launch.py serve`."
        )
    framework, default, python = INFERENCE_IMAGES[contract.backend]
    version = image_version(framework, contract.versions.get(framework) or default)
    image = image_uris.retrieve(
        framework,
        region,
        version=version,
        py_version=python,
        image_scope="inference",
        instance_type=instance_type,
    )
    env = {**MXNET_ENV, "SAGEMAKER_REGION": region} if framework == "mxnet" else {}
    return {"Image": image, "ModelDataUrl": archive_uri, "Environment": env}


def image_version(framework: str, exported_with: str) -> str:
    """The inference image's ``major.minor`` for a model exported with ``exported_with`` (``2.19.0``):
    the same release when the SDK's image catalogue serves it, else the nearest it serves, a newer one
    on a tie (a newer server reads an older export)."""
    from sagemaker.core import image_uris

    def release(version: str) -> tuple:
        return tuple(int(part) for part in version.split(".")[:2])

    wanted = release(exported_with)
    served = {release(v) for v in image_uris.config_for_framework(framework)["inference"]["versions"]}
    best = min(served, key=lambda v: (v[0] != wanted[0], abs(v[1] - wanted[1]), -v[1]))
    return ".".join(map(str, best))


def create(deployment: Deployment, definition: Dict[str, Any], session: Any) -> str:
    """The model, endpoint config and endpoint, all named ``deployment.endpoint``; waits for InService.

    The SageMaker client does this (botocore checks each request against the service model): the SDK's
    resource classes (``sagemaker.core.resources``) re-read each object into a pydantic model that
    refuses the empty ``VpcConfig`` and ``DataCaptureConfig`` some API implementations (moto) answer with.
    """
    sm, name = session.client("sagemaker"), deployment.endpoint
    sm.create_model(ModelName=name, PrimaryContainer=definition, ExecutionRoleArn=deployment.role)
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "InitialInstanceCount": 1,
        "InstanceType": deployment.instance_type,
    }
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if deployment.wait:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 15, "MaxAttempts": 240}
        )
    return sm.describe_endpoint(EndpointName=name)["EndpointStatus"]


def deploy(source: str, deployment: Deployment, session: Any, tracking_uri: Optional[str] = None) -> str:
    """Deploy ``source`` (a training or tuning job, an MLflow run, or a model folder); return the status."""
    s3, sm = session.client("s3"), session.client("sagemaker")
    model = mlflow_run(source, tracking_uri) if is_model_source(source) else training_job(sm, source)
    with tempfile.TemporaryDirectory() as tmp:
        folder = fetch(model, s3, Path(tmp))
        contract = contracts.load(folder)
        key = f"{deployment.prefix}/deploy/{deployment.endpoint}/model.tar.gz"
        s3.upload_file(str(pack(folder, Path(tmp) / "model.tar.gz")), deployment.bucket, key)
    definition = container(
        contract, f"s3://{deployment.bucket}/{key}", deployment.region, deployment.instance_type
    )
    return create(deployment, definition, session)


def undeploy(endpoint: str, session: Any) -> None:
    """Delete the endpoint, its endpoint config and its models."""
    from botocore.exceptions import ClientError

    sm = session.client("sagemaker")
    try:
        config = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    except ClientError as err:
        raise KxError(
            f"endpoint {endpoint!r} cannot be described: {err.response['Error']['Message']}"
        ) from None
    variants = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    sm.delete_endpoint(EndpointName=endpoint)
    sm.delete_endpoint_config(EndpointConfigName=config)
    for model in {v["ModelName"] for v in variants}:
        sm.delete_model(ModelName=model)


def invoke(session: Any, endpoint: str, images: Any) -> Dict[str, Any]:
    """The endpoint's answer to a batch of images, sent as kx's server takes them."""
    runtime = session.client("sagemaker-runtime")
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"instances": images.tolist()}),
    )
    return json.loads(answer["Body"].read())


def endpoint_contract(session: Any, endpoint: str) -> contracts.Contract:
    """The contract inside the model archive an endpoint serves."""
    sm, s3 = session.client("sagemaker"), session.client("s3")
    config = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    model = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]["ModelName"]
    bucket, key = split_s3(sm.describe_model(ModelName=model)["PrimaryContainer"]["ModelDataUrl"])
    with tarfile.open(
        fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), mode="r:gz"
    ) as tar:
        member = next(
            (m for m in tar.getmembers() if m.name.endswith(contracts.SUFFIX) and "/" not in m.name), None
        )
        if member is None:
            raise KxError(f"endpoint {endpoint} serves {model}, whose archive holds no kx contract.")
        return contracts.Contract(**json.loads(tar.extractfile(member).read()))


def sagemaker_target(overrides: List[str]) -> Any:
    """The ``target=sagemaker`` config (role, region, bucket, prefix) with ``overrides`` (``target.region=...``)."""
    bad = [o for o in overrides if not o.startswith("target.")]
    if bad:
        raise KxError(
            f"{bad[0]!r} is not a SageMaker setting; give target.role=, target.region=, target.bucket=, ..."
        )
    return compose(["target=sagemaker", *overrides]).target
