"""Process-wide settings, in one place: the environment variables and third-party switches that hold
for the whole process once set.

Entry points (train.py, launch.py, the sweeper plugin) call :func:`quiet_libraries` once at start.
A framework reads some settings only once, when it is first imported (``KERAS_BACKEND``, XLA's and
OpenMP's); the one place in kx that imports it calls the function here right before. No other kx
module writes ``os.environ`` (tests/test_process.py). An explicit setting in the environment wins
wherever kx only supplies a default.
"""

import json
import os
import warnings
from typing import Any, Dict, Optional

from kx.machine import usable_cpus

XLA_CPU_COUNT = "--xla_force_host_platform_device_count"


def quiet_libraries() -> None:
    """Third-party chatter off the console, before any of those libraries is imported: MLflow logs
    through the root logger's handlers (:mod:`kx.quiet` filters them) instead of configuring its own,
    TensorFlow's C++ INFO and WARNING lines are off (errors still show), and MLflow's artifact progress
    bars, which would interleave with kx's one line per epoch, are off. The SageMaker SDK warns at
    every request built on a PipelineSession that it starts no job: kx sends them itself."""
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")


def sagemaker_without_aws() -> None:
    """A dry run or a local-mode job needs no AWS: no role check with IAM, no credential lookup on
    EC2's metadata service."""
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def mlflow_telemetry(enabled: bool) -> None:
    """MLflow's usage telemetry off unless ``tracking.mlflow_telemetry`` allows it."""
    if not enabled:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def tensorflow_log_level(level: int) -> None:
    """The least severe of TensorFlow's C++ log lines shown (0 all ... 3 none but fatal), unless set."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", str(level))


def keras_engine(engine: str) -> None:
    """The engine Keras runs on in this process; Keras reads it once, at its first import."""
    os.environ["KERAS_BACKEND"] = engine
    tensorflow_log_level(2)


def tensorflow_cluster(tf_config: Dict[str, Any]) -> None:
    """The hosts of a multi-worker TensorFlow job (``TF_CONFIG``), unless the environment has them;
    the strategy reads them when it is created."""
    os.environ.setdefault("TF_CONFIG", json.dumps(tf_config))


def xla_cpu_devices(count: int) -> None:
    """Ask XLA for ``count`` CPU devices; it reads the flag once, when JAX is first imported."""
    flags = os.environ.get("XLA_FLAGS", "")
    if count > 1 and XLA_CPU_COUNT not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_COUNT}={count}".strip()


def visible_gpus(count: int) -> None:
    """Let the engines see the first ``count`` GPUs, unless ``CUDA_VISIBLE_DEVICES`` already says."""
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", ",".join(str(i) for i in range(count)))


def mxnet_threads(threads: Optional[int] = None, default: Optional[int] = None) -> None:
    """MXNet's OpenMP threads, which it sizes once, at import: ``threads`` when given; else, unless
    ``OMP_NUM_THREADS`` says otherwise, ``default`` or every CPU the process may use (MXNet's own
    default, the physical cores, is fewer on a machine with hyperthreads)."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    else:
        os.environ.setdefault("OMP_NUM_THREADS", str(default or usable_cpus()))


def mxnet_deterministic() -> None:
    """MXNet's deterministic kernels (its CPU kernels already are)."""
    os.environ["MXNET_ENFORCE_DETERMINISM"] = "1"


def quiet_optuna_logs() -> None:
    """Optuna's INFO lines (a study created, a trial finished) off for this process: kx reports its
    trials itself. Optuna resets its level when first imported, so call it where Optuna is first used."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
