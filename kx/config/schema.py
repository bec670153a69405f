"""Typed schemas for every kx config group, registered in Hydra's ConfigStore.

OmegaConf enforces the types and the allowed enum values while Hydra composes the config, so a
wrong type, an unknown key or an unknown choice is rejected before any training framework is
imported. Range checks that types cannot express live in :mod:`kx.config.validate`.

This module runs inside SageMaker jobs (Python 3.8 in the MXNet image): annotations use
``typing`` forms that Python 3.8 can evaluate at run time.
"""

import functools
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from kx.config.choices import Choice
from kx.config.keys import groups_help
from kx.config.objective import ObjectiveConfig
from kx.config.sweep import SweepConfig
from kx.config.sweep import register as register_sweep


class ImageLayout(Choice):
    channels_last = "channels_last"
    channels_first = "channels_first"


class Padding(Choice):
    same = "same"
    valid = "valid"


class Optimizer(Choice):
    sgd = "sgd"
    adam = "adam"
    rmsprop = "rmsprop"


class Schedule(Choice):
    constant = "constant"
    cosine = "cosine"


class Precision(Choice):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"


class InputPipeline(Choice):
    auto = "auto"
    arrays = "arrays"
    tf_data = "tf_data"


class Switch(Choice):
    auto = "auto"
    on = "on"
    off = "off"


@dataclass
class BackendConfig:
    """The engine that trains the model (the ``_target_`` class of kx/backends/, built where the run
    trains: kx.backends.create_backend) and the image layout it is fed."""

    _target_: str = MISSING
    name: str = MISSING
    image_layout: ImageLayout = ImageLayout.channels_last
    num_gpus: Optional[int] = None  # None: every visible GPU; 0: CPU only (SageMaker: SM_NUM_GPUS)
    # speed (benchmarks/time_to_accuracy.py measures each)
    precision: Precision = Precision.auto  # auto: bfloat16 on CPUs with native bf16 (kx/backends/precision)
    # a compiled training step: XLA (tensorflow, jax), torch.compile (torch), hybridize (mxnet);
    # auto: each engine's measured best (XLA off on TensorFlow CPUs, where it is slower)
    jit: Switch = Switch.auto
    threads: Optional[int] = None  # intra-op threads; None: the engine's default (every core)
    # training steps per call into the compiled step (Keras's steps_per_execution): fewer Python
    # round trips and callback calls per epoch (benchmarks/backends.py --ab measures it); None: auto,
    # several on tensorflow on one device, else 1 (Keras on torch and MXNet run one step per call)
    steps_per_execution: Optional[int] = None
    # tf_data (tensorflow): kx's pipeline, without tf.data's autotuner; arrays: Keras's own
    # batching, which on TensorFlow can stall at an epoch start (the autotuner's thread;
    # benchmarks/backends.py measures it);
    # auto: tf_data on tensorflow on one device, else arrays
    input_pipeline: InputPipeline = InputPipeline.auto
    # devices (data parallel)
    cpu_devices: int = 1  # without GPUs: split the CPU into N logical devices and train data-parallel
    #                       over them (kx/backends/devices.py); for testing the multi-device path


@dataclass
class ConvLayerConfig:
    filters: int = 64
    kernel_size: int = 3
    padding: Padding = Padding.same


@dataclass
class ModelConfig:
    """Conv blocks (conv, optional batch norm, ReLU, max-pool), then dense layers and a softmax."""

    name: str = MISSING
    conv_layers: List[ConvLayerConfig] = field(default_factory=list)
    batch_norm: bool = True
    pool_size: int = 2
    dense_units: int = 512
    dense_layers: int = 1
    dropout: float = 0.3
    bn_momentum: Optional[float] = (
        None  # None: 0.99, lower for runs under 1000 steps (kx/backends/bn_momentum.py)
    )


@dataclass
class BuilderModelConfig:
    """A network built by a function (see kx/models/): the user's own, or a built-in architecture."""

    name: str = MISSING
    builder: Optional[str] = None  # "pkg.module:function" returning a Keras model (tensorflow, jax, torch)
    gluon_builder: Optional[str] = None  # the same for backend=mxnet, returning a Gluon HybridBlock
    kwargs: Dict[str, Any] = field(default_factory=dict)  # keyword arguments for the builder


@dataclass
class TargetConfig:
    name: str = "local"


@dataclass
class SageMakerTargetConfig(TargetConfig):
    """Where and how launch.py runs the job on SageMaker (``target=sagemaker``)."""

    name: str = "sagemaker"
    role: Optional[str] = None  # full IAM role ARN the job runs as (required)
    region: Optional[str] = None  # None: as boto3 resolves it (AWS_DEFAULT_REGION, the profile's)
    bucket: Optional[str] = None  # None: the SDK's default bucket sagemaker-<region>-<account>
    prefix: str = "kx"  # S3 key prefix for code, data, checkpoints and outputs
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime_s: int = 86400
    spot: bool = False  # managed spot training: checkpoints make interruptions cost <= 1 epoch
    max_wait_s: Optional[int] = None  # spot only; None: 2 x max_runtime_s
    checkpoint: bool = True  # sync train.checkpoint_dir with S3 (always on for spot)
    framework_version: Optional[str] = None  # None: tensorflow 2.19 / mxnet 1.9
    py_version: Optional[str] = None  # None: the image's (py312 / py38)
    base_job_name: str = "kx"
    container_log_level: int = 20
    tags: Dict[str, str] = field(default_factory=dict)
    environment: Dict[str, str] = field(default_factory=dict)  # variables set in the job's containers
    poll_s: float = 30.0  # status polling interval while waiting
    sdk_telemetry: bool = False  # the SageMaker SDK's usage telemetry (TelemetryOptOut when false)
    warm_start: List[str] = field(default_factory=list)  # sweeps: earlier tuning jobs to start from
    warm_start_type: str = "IdenticalDataAndAlgorithm"  # or TransferLearning (other data or image)


@dataclass
class SageMakerLocalTargetConfig(SageMakerTargetConfig):
    """Rehearse the very job target=sagemaker would submit, on this machine, without Docker."""

    name: str = "sagemaker_local"
    role: str = "arn:aws:iam::111122223333:role/kx-rehearsal"
    bucket: Optional[str] = "kx-rehearsal"
    python: Optional[str] = None  # interpreter that runs the job (e.g. a Python 3.8 venv); None: this one
    root: str = "outputs/sagemaker_local"  # each job's /opt/ml tree goes to <root>/<job name>/
    s3_endpoint: Optional[str] = None  # an S3 API for the jobs' checkpoints (e.g. moto); None: <root>/s3/


@dataclass
class EarlyStoppingConfig:
    """Stop when the objective has not improved for ``patience`` epochs."""

    enabled: bool = True
    patience: int = 5
    min_delta: float = 0.0


@dataclass
class TrainConfig:
    """How the model is trained. The defaults are the recipe that reached the reference CNN's target
    accuracy on Fashion-MNIST soonest (benchmarks/time_to_accuracy.py; the reference recipe is batch
    128 at a constant rate 0.01)."""

    epochs: int = 4
    batch_size: Optional[int] = None  # None: 256, smaller on small data (kx/config/batch_size.py)
    optimizer: Optimizer = Optimizer.sgd
    learning_rate: float = 0.05  # the peak rate, reached after the warm-up
    momentum: float = 0.9  # sgd only, like nesterov
    nesterov: bool = True
    schedule: Schedule = Schedule.cosine  # after warm-up: constant, or cosine decay to 0 (kx/backends/optim)
    warmup_epochs: float = 0.3  # linear warm-up from 0 to learning_rate
    # validate, keep and export a moving average of the weights (Keras's EMA): it reaches a target
    # accuracy in fewer epochs, closer across seeds; auto: on for the Keras engines, off on mxnet
    ema: Switch = Switch.auto
    ema_momentum: Optional[float] = None  # None: the batch-norm statistics' span (kx/backends/bn_momentum)
    seed: int = 42
    # Every run is seeded: on CPUs a seed repeats its metrics exactly without more. true adds the
    # engines' deterministic kernels (TensorFlow's op determinism; MXNet's), which GPUs need for that
    # (benchmarks/backends.py measures what they cost)
    deterministic: bool = False
    checkpoint_dir: Optional[str] = None  # per-epoch checkpoints; a rerun resumes (SageMaker spot)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)  # a sweep's objective wins
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db
    experiment: str = "kx"
    run_name: Optional[str] = None
    mlflow_telemetry: bool = False  # MLflow's own usage telemetry (MLFLOW_DISABLE_TELEMETRY when false)
    register_as: Optional[str] = None  # register the run's MLflow Model under this name in the registry


@dataclass
class ExportConfig:
    name: str = "model"  # <model_dir>/<name>/<version>/ in TF Serving layout
    version: int = 1
    model_dir: Optional[str] = None  # None: <run output folder>/model


@dataclass
class KxConfig:
    backend: Any = MISSING
    model: Any = MISSING
    dataset: Any = MISSING
    target: Any = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    sweep: Optional[SweepConfig] = None  # sweep=<name>: conf/sweep/<name>.yaml, for train.py -m


def _open(schema: type, key: str) -> DictConfig:
    """``schema`` with ``key`` open to new entries (a builder's keyword arguments are its own)."""
    node = OmegaConf.structured(schema)
    OmegaConf.set_struct(node[key], False)
    return node


@functools.lru_cache(maxsize=None)
def register() -> None:
    """Register the schemas; group files extend them through their defaults lists. Each dataset's
    schema is its module's to store (kx/data/registry.py). Once per process: Hydra's ConfigStore is
    the process's, and every composition calls this."""
    cs = ConfigStore.instance()
    cs.store(name="kx_schema", node=KxConfig)
    cs.store(group="schema/backend", name="backend", node=BackendConfig)
    cs.store(group="schema/model", name="model", node=ModelConfig)
    cs.store(group="schema/model", name="builder", node=_open(BuilderModelConfig, "kwargs"))
    cs.store(group="schema/target", name="target", node=TargetConfig)
    cs.store(group="schema/target", name="sagemaker", node=SageMakerTargetConfig)
    cs.store(group="schema/target", name="sagemaker_local", node=SageMakerLocalTargetConfig)
    register_sweep()
    if not OmegaConf.has_resolver("kx_groups"):  # the groups --help lists (not the schema/* groups)
        OmegaConf.register_new_resolver("kx_groups", groups_help)
