"""The SageMaker training job for a composed kx config: code, data, hyperparameters, request.

The job runs the backend's framework training image in script mode (the framework toolkit's
contract: ``sagemaker_program`` and ``sagemaker_submit_directory`` hyperparameters, the rest passed
to train.py as ``--key value``). kx packages its own source and data and knows every S3 URI before
anything is uploaded, so the exact CreateTrainingJob request can be built, printed and validated
with no network; :func:`model_trainer` turns the plan into the SDK's ``ModelTrainer``.
"""

import gzip
import hashlib
import io
import secrets
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from omegaconf import DictConfig

from kx.errors import KxError

PROJECT_DIR = Path(__file__).resolve().parents[2]
GROUPS = ("backend", "model", "dataset")
CHECKPOINT_DIR = "/opt/ml/checkpoints"
# Tells the MXNet container to start MXNet's parameter servers on every host of a multi-host job.
PARAMETER_SERVER_KEY = "sagemaker_parameter_server_enabled"
# What train.py needs inside the framework images beyond what they ship: the toolkit installs the
# requirements.txt it finds beside the entry point.
JOB_REQUIREMENTS = Path(__file__).with_name("job-requirements.txt")
# Regexes over train.py's log lines. The last match wins, and the run's last metric lines carry the
# best epoch's values (best_val_acc=..., best_val_loss=...), so the job's final metrics are the best.
METRIC_DEFINITIONS = [
    {"Name": "loss", "Regex": r" loss=([0-9.]+)"},
    {"Name": "acc", "Regex": r" acc=([0-9.]+)"},
    {"Name": "val_loss", "Regex": r"val_loss=([0-9.]+)"},
    {"Name": "val_acc", "Regex": r"val_acc=([0-9.]+)"},
    {"Name": "best_epoch", "Regex": r"best_epoch=([0-9]+)"},
]
# Framework images per backend: (framework, default version, default Python).
IMAGES = {"tensorflow": ("tensorflow", "2.16", "py310"), "mxnet": ("mxnet", "1.9", "py38")}


class LaunchError(KxError):
    """The job cannot be built or submitted as configured."""


@dataclass
class Upload:
    """A local file and the content-addressed S3 object URI it goes to."""

    local: Path
    uri: str


@dataclass
class JobPlan:
    """Everything the request needs, decided before any upload."""

    base_job_name: str
    image: str
    hyperparameters: Dict[str, str]
    source: Upload
    channels: Dict[str, Upload] = field(default_factory=dict)
    output_path: str = ""
    checkpoint_uri: Optional[str] = None

    @property
    def uploads(self) -> List[Upload]:
        return [self.source, *self.channels.values()]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def package_source(dest: Path) -> Path:
    """``sourcedir.tar.gz``: train.py, conf/, kx/, hydra_plugins/ (conf/config.yaml names kx's sweeper)
    and the job's requirements.txt, byte-reproducible."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        files = [PROJECT_DIR / "train.py", *sorted((PROJECT_DIR / "conf").rglob("*.yaml")),
                 *sorted((PROJECT_DIR / "kx").rglob("*.py")),
                 *sorted((PROJECT_DIR / "hydra_plugins").rglob("*.py"))]  # fmt: skip
        entries = [(str(f.relative_to(PROJECT_DIR)), f.read_bytes()) for f in files]
        entries.append(("requirements.txt", JOB_REQUIREMENTS.read_bytes()))
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    path = dest / "sourcedir.tar.gz"
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return path


def write_channels(cfg: DictConfig, dest: Path) -> Dict[str, Path]:
    """The dataset as SageMaker channels (``training/training.npz``, ``validation/validation.npz``).

    Only file-backed datasets need channels; ``digits`` and ``synthetic`` are made inside the job.
    """
    if cfg.dataset.name != "fashion_mnist":
        return {}
    from kx.data import fashion_mnist

    # no download fallback here: it would import Keras (and its engine) into launch.py
    train, val = fashion_mnist.load_arrays(cfg.dataset.path, download=False)
    paths = {}
    for channel, (images, labels) in (("training", train), ("validation", val)):
        folder = dest / channel
        folder.mkdir(parents=True, exist_ok=True)
        paths[channel] = folder / f"{channel}.npz"
        np.savez(paths[channel], image=images.astype(np.uint8), label=labels.astype(np.uint8))
    return paths


def hyperparameters(cfg: DictConfig, overrides: List[str]) -> Dict[str, str]:
    """The job's hyperparameters: the group choices plus the user's overrides, as config paths.

    Target, tracking and Hydra settings stay with launch.py (which logs the job to MLflow); the job
    composes the same config from these.
    """
    choices = cfg.hydra.runtime.choices
    hps = {group: choices[group] for group in GROUPS}
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key.split(".")[0] in ("target", "hydra", "tracking") or key in GROUPS:
            continue
        hps[key] = value
    return hps


def image_uri(cfg: DictConfig) -> str:
    """The framework training image for the backend (``image_uris.retrieve``, offline)."""
    backend, target = cfg.backend.name, cfg.target
    if backend not in IMAGES:
        raise LaunchError(f"backend={backend} has no SageMaker framework training image; "
                          f"target=sagemaker supports backend={' or backend='.join(IMAGES)}.")  # fmt: skip
    from sagemaker.core import image_uris

    framework, version, py_version = IMAGES[backend]
    try:
        return image_uris.retrieve(framework, target.region, version=target.framework_version or version,
                                   py_version=target.py_version or py_version,
                                   instance_type=target.instance_type, image_scope="training")  # fmt: skip
    except ValueError as err:
        raise LaunchError(f"No {framework} training image for target.framework_version="
                          f"{target.framework_version or version}: {err}") from None  # fmt: skip


def plan(cfg: DictConfig, overrides: List[str], work_dir: Path, bucket: str) -> JobPlan:
    """Package code and data into ``work_dir`` and decide every URI and hyperparameter."""
    target = cfg.target
    if not target.role:
        raise LaunchError("target.role is not set: give the IAM role ARN the job runs as, with "
                          "target.role=arn:aws:iam::<account>:role/<name> or $KX_SAGEMAKER_ROLE.")  # fmt: skip
    root = f"s3://{bucket}/{target.prefix}"
    base = f"{target.base_job_name}-{cfg.backend.name}-{secrets.token_hex(2)}"
    source = package_source(work_dir)
    hps = hyperparameters(cfg, overrides)
    checkpoint_uri = None
    if target.spot or target.checkpoint:
        hps["train.checkpoint_dir"] = CHECKPOINT_DIR
        checkpoint_uri = f"{root}/checkpoints/{base}"
    hps.update({
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": f"{root}/code/{_sha(source.read_bytes())}/sourcedir.tar.gz",
        "sagemaker_region": target.region,
        "sagemaker_container_log_level": str(target.container_log_level),
    })  # fmt: skip
    if cfg.backend.name == "mxnet" and target.instance_count > 1:
        hps[PARAMETER_SERVER_KEY] = "true"
    if cfg.backend.name == "tensorflow":  # what the TensorFlow framework adds to every job
        hps["model_dir"] = f"{root}/output/{base}/model"
    channels = {
        name: Upload(path, f"{root}/data/{cfg.dataset.name}/{_sha(path.read_bytes())}/{name}/{path.name}")
        for name, path in write_channels(cfg, work_dir / "data").items()
    }
    return JobPlan(
        base_job_name=base,
        image=image_uri(cfg),
        hyperparameters=hps,
        source=Upload(source, hps["sagemaker_submit_directory"]),
        channels=channels,
        output_path=f"{root}/output",
        checkpoint_uri=checkpoint_uri,
    )


def split_s3(uri: str) -> Tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def upload(s3: Any, item: Upload) -> bool:
    """Upload ``item`` unless its content-addressed key is already there; True when uploaded."""
    bucket, key = split_s3(item.uri)
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return False
    except s3.exceptions.ClientError as err:
        if err.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.upload_file(str(item.local), bucket, key)
    return True


def model_trainer(cfg: DictConfig, job: JobPlan, session: Any) -> Any:
    """The SDK's ``ModelTrainer`` for ``job`` (import cost ~2 s: only SageMaker commands get here)."""
    from sagemaker.core.shapes import MetricDefinition, Tag
    from sagemaker.train.configs import (
        CheckpointConfig,
        Compute,
        InputData,
        OutputDataConfig,
        StoppingCondition,
    )
    from sagemaker.train.model_trainer import ModelTrainer

    target = cfg.target
    tags = {"kx:backend": cfg.backend.name, "kx:model": cfg.model.name, "kx:dataset": cfg.dataset.name,
            **target.tags}  # fmt: skip
    trainer = ModelTrainer(
        sagemaker_session=session,
        role=target.role,
        base_job_name=job.base_job_name,
        training_image=job.image,
        compute=Compute(
            instance_type=target.instance_type,
            instance_count=target.instance_count,
            volume_size_in_gb=target.volume_size_gb,
            enable_managed_spot_training=True if target.spot else None,
        ),  # fmt: skip
        stopping_condition=StoppingCondition(
            max_runtime_in_seconds=target.max_runtime_s,
            max_wait_time_in_seconds=(target.max_wait_s or 2 * target.max_runtime_s) if target.spot else None,
        ),
        output_data_config=OutputDataConfig(s3_output_path=job.output_path),
        checkpoint_config=CheckpointConfig(s3_uri=job.checkpoint_uri, local_path=CHECKPOINT_DIR)
        if job.checkpoint_uri
        else None,
        input_data_config=[
            InputData(channel_name=name, data_source=up.uri.rsplit("/", 1)[0])  # the channel's prefix
            for name, up in job.channels.items()
        ]
        or None,
        hyperparameters=dict(job.hyperparameters),
        tags=[Tag(key=k, value=str(v)) for k, v in tags.items()],
    )
    return trainer.with_metric_definitions(
        [MetricDefinition(name=m["Name"], regex=m["Regex"]) for m in METRIC_DEFINITIONS]
    )


def request(trainer: Any) -> Dict[str, Any]:
    """The CreateTrainingJob request ``trainer.train()`` sends, in the API's own shape.

    The SDK has no public call for it; its request builder is the one ``train()`` uses.
    """
    return trainer._create_training_job_args(boto3=True)
