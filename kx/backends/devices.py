"""The devices one host trains on, and data parallelism over them.

``backend.num_gpus`` chooses the GPUs (None: every visible one; 0: none). Without GPUs,
``backend.cpu_devices`` splits the CPU into that many logical devices, so the multi-device path
runs (and is tested) on a machine without GPUs. With more than one device each engine trains
data-parallel: every device holds a copy of the model and takes an equal share of every global
batch of ``train.batch_size``; the gradients are summed across devices before each update.

Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import contextlib
import logging
from typing import Any, List, Optional

import numpy as np

from kx.backends.base import BackendError, data_parallel_steps

log = logging.getLogger("kx")


def jax_distribution(keras: Any, cpu_count: int) -> None:
    """Keras 3's data-parallel distribution over every JAX device, when there are several."""
    import jax

    if jax.default_backend() == "cpu":
        _check_cpu_count(len(jax.devices()), cpu_count, "JAX")
    if len(jax.devices()) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))


def tensorflow_strategy(tf: Any, cpu_count: int) -> Optional[Any]:
    """A ``MirroredStrategy`` over every visible GPU, else over ``cpu_count`` logical CPUs; None
    for a single device (TensorFlow's runtime then stays uninitialised, for later settings).
    Call it before TensorFlow runs any op: logical devices are fixed from then on."""
    gpus = len(tf.config.list_physical_devices("GPU"))
    if gpus > 1:
        names = [f"/gpu:{i}" for i in range(gpus)]
    elif gpus or cpu_count == 1:
        return None
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        with contextlib.suppress(RuntimeError):  # TensorFlow already runs: checked below
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_count
            )
        _check_cpu_count(len(tf.config.list_logical_devices("CPU")), cpu_count, "TensorFlow")
        names = [f"/cpu:{i}" for i in range(cpu_count)]
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # INFO lines for every all-reduce traced
    return tf.distribute.MirroredStrategy(names)


def _check_cpu_count(found: int, wanted: int, engine: str) -> None:
    """The engine's CPU devices are fixed once it runs: an earlier run in this process may have
    fixed another count (e.g. a sweep's trials with different ``backend.cpu_devices``)."""
    if found != wanted:
        raise BackendError(
            f"backend.cpu_devices={wanted} cannot take effect: {engine} already runs in this process "
            f"with {found} CPU device(s), fixed when it started; run it in a fresh process."
        )


def mxnet_contexts(mx: Any, cpu_count: int) -> List[Any]:
    """Every visible GPU as an MXNet context, else ``cpu_count`` CPU contexts."""
    gpus = mx.context.num_gpus()
    return [mx.gpu(i) for i in range(gpus)] if gpus else [mx.cpu(i) for i in range(cpu_count)]


def short_name(device: str) -> str:
    """``/job:localhost/replica:0/task:0/device:CPU:1`` -> ``cpu:1``."""
    return device.rsplit("device:", 1)[-1].lower()


def announce(devices: List[str], batch_size: int, samples: int, note: str = "") -> None:
    """With several devices: check that each global batch splits evenly over them and log the
    split once (``note``, if any, appended: what the engine leaves out to keep batches even)."""
    if len(devices) > 1:
        data_parallel_steps(batch_size, samples, len(devices), "devices")
        log.info(
            "data-parallel over %d devices: %s; each global batch of %d is split into %d per device%s",
            len(devices),
            ", ".join(devices),
            batch_size,
            batch_size // len(devices),
            note,
        )


def even_length(samples: int, parts: int) -> int:
    """The most of ``samples`` that is a multiple of ``parts``: for engines whose every batch (the
    last, partial one too) must split evenly over ``parts`` devices."""
    return samples // parts * parts


def padded_predict(predict: Any, x: np.ndarray, batch_size: int, parts: int) -> np.ndarray:
    """``predict(x, batch)`` for engines whose every batch must split evenly over ``parts``
    devices: ``x`` padded (repeating its last row) to a multiple of ``parts``, the batch rounded
    down to one; the padding's outputs are dropped."""
    missing = -len(x) % parts
    batch = max(parts, batch_size // parts * parts)
    if not missing or not len(x):
        return predict(x, batch)
    return predict(np.concatenate([x, np.repeat(x[-1:], missing, axis=0)]), batch)[: len(x)]
