"""A training job's request for a composed kx config: its code, data, hyperparameters and the request.

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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from kx import _compat
from kx.data import channels, registry
from kx.data.files import split_s3
from kx.data.loading import load_raw
from kx.errors import KxError
from kx.models import builder
from kx.sagemaker.script_mode import encode_value

PROJECT_DIR = Path(__file__).resolve().parents[2]
# The config groups a job's hyperparameters choose; target and sweep are launch.py's, not the job's.
HYPERPARAMETER_GROUPS = ("backend", "model", "dataset")
CHECKPOINT_DIR = "/opt/ml/checkpoints"
# Tells the MXNet container to start MXNet's parameter servers on every host of a multi-host job.
PARAMETER_SERVER_KEY = "sagemaker_parameter_server_enabled"
# What train.py needs inside the framework images beyond what they ship: the toolkit installs the
# requirements.txt it finds beside the entry point.
PACKAGED_MODULES = ("kx", "hydra_plugins", "train")  # what package_source ships, as importable names
JOB_REQUIREMENTS = Path(__file__).with_name("job-requirements.txt")
# ...and per backend: the TensorFlow images pin no Keras (each carries whatever 3.x its build
# resolved) while kx calls Keras APIs of 3.6 (``Model.export(..., verbose=...)``).
BACKEND_REQUIREMENTS = {"tensorflow": ["keras>=3.6,<4"]}
# Regexes over train.py's log lines (kx/backends/monitor.py), one per metric name MLflow shows for
# local runs. SageMaker keeps each regex's last match as the job's final value: the per-epoch names
# end at the last epoch (``\b``: ``val_acc=`` never matches inside ``best_val_acc=``), the ``best_*``
# names come from the best-epoch lines train.py prints last.
EPOCH_METRICS = ("loss", "acc", "val_loss", "val_acc")
METRIC_DEFINITIONS = [
    *({"Name": name, "Regex": rf"\b{name}=([0-9.]+)"} for name in EPOCH_METRICS),
    *({"Name": f"best_{name}", "Regex": rf"\bbest_{name}=([0-9.]+)"} for name in EPOCH_METRICS),
    {"Name": "best_epoch", "Regex": r"\bbest_epoch=([0-9]+)"},
]
# Framework images per backend: (framework, default version, default Python).
# TensorFlow 2.19 is the newest the SDK's image catalogue serves; .ci/run rehearses in its versions.
TRAINING_IMAGES = {"tensorflow": ("tensorflow", "2.19", "py312"), "mxnet": ("mxnet", "1.9", "py38")}


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


def job_requirements(backend: str) -> str:
    """The job's ``requirements.txt``: what train.py needs in every image, then what ``backend``'s needs."""
    return JOB_REQUIREMENTS.read_text() + "".join(
        f"{line}\n" for line in BACKEND_REQUIREMENTS.get(backend, [])
    )


def package_source(dest: Path, backend: str) -> Path:
    """``sourcedir.tar.gz``: train.py, conf/, kx/, hydra_plugins/ (conf/config.yaml names kx's sweeper)
    and the job's requirements.txt, byte-reproducible."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        files = [
            PROJECT_DIR / "train.py",
            *sorted((PROJECT_DIR / "conf").rglob("*.yaml")),
            *sorted((PROJECT_DIR / "kx").rglob("*.py")),
            *sorted((PROJECT_DIR / "hydra_plugins").rglob("*.py")),
        ]
        entries = [(str(f.relative_to(PROJECT_DIR)), f.read_bytes()) for f in files]
        entries.append(("requirements.txt", job_requirements(backend).encode()))
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    path = dest / "sourcedir.tar.gz"
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return path


def write_channels(cfg: DictConfig, dest: Path) -> Dict[str, Path]:
    """The dataset as SageMaker channels (:mod:`kx.data.channels`), which the job reads back.

    Datasets made inside the job (``digits``, ``synthetic``: not ``shipped``) need none.
    """
    if not registry.spec(cfg.dataset.name).shipped:
        return {}
    dataset = cfg.dataset
    if "download" in dataset:  # a framework's downloader would import Keras (and its engine) here
        dataset = OmegaConf.merge(dataset, {"download": False})
    return channels.write(load_raw(dataset, cfg.train.seed), dest)


def hyperparameters(cfg: DictConfig, overrides: List[str]) -> Dict[str, str]:
    """The job's hyperparameters: the group choices plus the user's overrides, as config paths.

    Target, tracking, sweep and Hydra settings stay with launch.py (which logs the job to MLflow and
    turns a sweep into a tuning job); the job composes the same config from these. Each value is the
    composed one, encoded to survive the toolkit's JSON decoding
    (:func:`~kx.sagemaker.script_mode.encode_value`).
    """
    choices = cfg.hydra.runtime.choices
    hps = {group: choices[group] for group in HYPERPARAMETER_GROUPS}
    for override in overrides:
        key = override.lstrip("+~").partition("=")[0]
        if key.split(".")[0] in ("target", "hydra", "tracking", "sweep") or key in HYPERPARAMETER_GROUPS:
            continue
        value = OmegaConf.select(cfg, key)
        hps[key] = encode_value(
            OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        )
    return hps


def image_uri(cfg: DictConfig) -> str:
    """The framework training image for the backend (``image_uris.retrieve``, offline)."""
    backend, target = cfg.backend.name, cfg.target
    if backend not in TRAINING_IMAGES:
        raise LaunchError(
            f"backend={backend} has no SageMaker framework training image; "
            f"target=sagemaker supports backend={' or backend='.join(TRAINING_IMAGES)}."
        )
    from sagemaker.core import image_uris

    framework, version, py_version = TRAINING_IMAGES[backend]
    try:
        return image_uris.retrieve(
            framework,
            target.region,
            version=target.framework_version or version,
            py_version=target.py_version or py_version,
            instance_type=target.instance_type,
            image_scope="training",
        )
    except ValueError as err:
        raise LaunchError(
            f"No {framework} training image for target.framework_version="
            f"{target.framework_version or version}: {err}"
        ) from None


def checkpoints_synced(cfg: DictConfig) -> bool:
    """Whether the job syncs checkpoints with S3: spot jobs always (an interruption resumes from them),
    single jobs when ``target.checkpoint``; a tuning job's trials only for spot, since nothing
    else restarts a trial and every trial would download the others' checkpoints first."""
    target = cfg.target
    return bool(target.spot or (target.checkpoint and not cfg.get("sweep")))


def check_packaged(model: DictConfig) -> None:
    """A model builder the job imports must be in the code :func:`package_source` ships."""
    for key in ("builder", "gluon_builder"):
        spec = model.get(key)
        if not spec:
            continue
        module = builder.import_path(spec, key)[0]
        if module.split(".")[0] not in PACKAGED_MODULES:
            raise LaunchError(
                f"model.{key}={spec}: the job runs only the code launch.py ships "
                f"({', '.join(PACKAGED_MODULES)}), and {module} is outside it; move the module "
                "into kx/ (e.g. kx/models/) and name it from there."
            )


def plan(cfg: DictConfig, overrides: List[str], work_dir: Path, bucket: str) -> JobPlan:
    """Package code and data into ``work_dir`` and decide every URI and hyperparameter."""
    target = cfg.target
    check_packaged(cfg.model)
    if not target.role:
        raise LaunchError(
            "target.role is not set: give the IAM role ARN the job runs as, with "
            "target.role=arn:aws:iam::<account>:role/<name> or $KX_SAGEMAKER_ROLE."
        )
    root = f"s3://{bucket}/{target.prefix}"
    base = f"{target.base_job_name}-{cfg.backend.name}-{secrets.token_hex(2)}"
    source = package_source(work_dir, cfg.backend.name)
    hps = hyperparameters(cfg, overrides)
    checkpoint_uri = None
    if checkpoints_synced(cfg):
        hps["train.checkpoint_dir"] = CHECKPOINT_DIR  # in the job: <dir>/<job name>/<host>, script_mode
        checkpoint_uri = f"{root}/checkpoints/{base}/"  # the slash: no sibling prefix is synced too
    hps.update(
        {
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": f"{root}/code/{_sha(source.read_bytes())}/sourcedir.tar.gz",
            "sagemaker_region": target.region,
            "sagemaker_container_log_level": str(target.container_log_level),
        }
    )
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
    """The SDK's ``ModelTrainer`` for ``job`` (the SDK is slow to import: only SageMaker commands get here)."""
    from sagemaker.core.shapes import MetricDefinition, Tag
    from sagemaker.train.configs import CheckpointConfig, Compute, OutputDataConfig, StoppingCondition
    from sagemaker.train.model_trainer import ModelTrainer

    target = cfg.target
    tags = {
        "kx:backend": cfg.backend.name,
        "kx:model": cfg.model.name,
        "kx:dataset": cfg.dataset.name,
        **({"kx:sweep": cfg.sweep.name} if cfg.get("sweep") else {}),
        **target.tags,
    }
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
        ),
        stopping_condition=StoppingCondition(
            max_runtime_in_seconds=target.max_runtime_s,
            max_wait_time_in_seconds=(target.max_wait_s or 2 * target.max_runtime_s) if target.spot else None,
        ),
        output_data_config=OutputDataConfig(s3_output_path=job.output_path),
        checkpoint_config=CheckpointConfig(s3_uri=job.checkpoint_uri, local_path=CHECKPOINT_DIR)
        if job.checkpoint_uri
        else None,
        input_data_config=[channel(name, up.uri.rsplit("/", 1)[0]) for name, up in job.channels.items()]
        or None,
        hyperparameters=dict(job.hyperparameters),
        environment=dict(target.environment) or None,
        tags=[Tag(key=k, value=str(v)) for k, v in tags.items()],
    )
    return trainer.with_metric_definitions(
        [MetricDefinition(name=m["Name"], regex=m["Regex"]) for m in METRIC_DEFINITIONS]
    )


def channel(name: str, prefix: str) -> Any:
    """An S3 input channel as the API's ``Channel`` (the tuner copies a trainer's ``InputData`` items
    into its training job definition unconverted, which its own validation then rejects)."""
    from sagemaker.core.shapes import Channel, DataSource, S3DataSource

    source = S3DataSource(s3_data_type="S3Prefix", s3_uri=prefix, s3_data_distribution_type="FullyReplicated")
    return Channel(channel_name=name, data_source=DataSource(s3_data_source=source), input_mode="File")


def job_name(base: str, max_length: int = 63) -> str:
    """``<base>-<yymmdd-HHMMSS>``, the base cut to fit ``max_length`` (tuning jobs: 32)."""
    stamp = time.strftime("%y%m%d-%H%M%S", time.gmtime())
    return f"{base[: max_length - len(stamp) - 1].rstrip('-')}-{stamp}"


def request(session: Any, step_args: Any, name_key: str, name: str) -> Dict[str, Any]:
    """The Create* request for SDK step arguments, named ``name``, in the API's own shape.

    ``step_args`` is what ``ModelTrainer.train()`` or ``HyperparameterTuner.tune()`` return on the
    ``PipelineSession`` ``session``: running them offline leaves the request in ``session.context``,
    which is how the SDK's own pipeline steps (``TrainingStep``/``TuningStep`` ``.arguments``) get
    it, without importing ``sagemaker.mlops`` (slow to import, and it needs a region at import;
    ``benchmarks/dry_run.py`` times a dry run). Pipelines
    name jobs at run time, so the SDK leaves the name out; kx sets it and sends this very request.
    """
    from sagemaker.core.workflow.utilities import execute_job_functions

    execute_job_functions(step_args)
    built = dict(session.context.args)
    built.pop(name_key, None)
    built.get("HyperParameters", {}).pop("sagemaker_job_name", None)
    return {name_key: name, **built}


def pipeline_session(boto_session: Any, sdk_config: dict, bucket: Optional[str]) -> Any:
    """A ``PipelineSession``: the SDK builds requests on it and sends nothing (kx sends them)."""
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    _compat.sagemaker_config_schema_checked_once()
    return PipelineSession(boto_session=boto_session, sagemaker_config=sdk_config, default_bucket=bucket)
