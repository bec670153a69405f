"""Keras 3 on TensorFlow, JAX or PyTorch: the engine is ``backend.name``.

``KERAS_BACKEND`` must be set before Keras is first imported, so nothing here imports Keras at
module level.
"""

import contextlib
import dataclasses
import importlib.util
import logging
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from omegaconf import DictConfig

from kx import process
from kx._compat import keras_engine_in_use
from kx.backends import bn_momentum, devices, keras_multi_worker, keras_optim, keras_steps, optim, precision
from kx.backends.base import Backend, BackendError, data_parallel_steps
from kx.backends.checkpoint import Checkpoint
from kx.backends.monitor import EpochMonitor
from kx.data import Dataset
from kx.models import builder

log = logging.getLogger("kx")
_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


class KerasBackend(Backend):
    """Builds a ``keras.Sequential`` from the model config and trains it with ``fit``.

    Across hosts (TensorFlow only) the model lives in a ``MultiWorkerMirroredStrategy`` built from
    ``TF_CONFIG``, which kx derives from the cluster, and trains with
    :func:`kx.backends.keras_multi_worker.fit`. On one host with several devices it trains
    data-parallel with plain ``fit`` (:mod:`kx.backends.devices`): TensorFlow in a
    ``MirroredStrategy``, JAX under Keras's ``DataParallel`` distribution; PyTorch on one device.
    """

    engines = tuple(_PACKAGES)
    multi_worker_engines = ("tensorflow",)
    averages_weights = True  # Keras's optimizers keep it (use_ema)
    best_weights: Optional[List[np.ndarray]] = None
    strategy: Any = None
    even_parts = 1  # JAX data-parallel: every batch must split evenly over this many devices

    def prepare(self, seed: int, deterministic: bool) -> None:
        running = keras_engine_in_use(self.name)
        if running:
            raise BackendError(
                f"Keras is already running on {running!r} in this process; backend={self.name} needs a fresh process."
            )
        process.keras_engine(self.name)
        if self.name == "jax":
            process.xla_cpu_devices(self.cfg.cpu_devices)
        try:
            import keras
        except ImportError as err:
            raise BackendError(
                f"backend={self.name} needs Keras and {_PACKAGES[self.name]}, which "
                f"are not installed ({err}). Install them with "
                f"`pip install -e .[{self.name}]`."
            ) from None
        self.keras, self.seed = keras, seed
        if self.cluster.size > 1:  # before any other TensorFlow op, as the strategy requires
            import tensorflow as tf

            process.tensorflow_cluster(self.cluster.tf_config())
            logging.getLogger("tensorflow").setLevel(logging.WARNING)  # one INFO line per all-reduce trace
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
        keras.config.set_image_data_format(self.image_layout)
        keras.utils.set_random_seed(seed)
        self._configure_engine(deterministic)
        if self.cluster.size == 1:  # after the thread settings: TensorFlow takes them only before it starts
            self._use_local_devices(keras)

    def _configure_engine(self, deterministic: bool) -> None:
        """Threads, op determinism and the precision policy: before the first op and the first layer."""
        threads = self.cfg.get("threads")
        if self.name == "tensorflow":
            import tensorflow as tf

            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
            if deterministic:
                tf.config.experimental.enable_op_determinism()
        elif self.name == "torch" and threads:
            import torch

            torch.set_num_threads(threads)
        on_gpu = any(not d.startswith("cpu") for d in self.devices())
        self.precision = precision.resolve(str(self.cfg.get("precision", "float32")), self.name, on_gpu)
        if self.precision == "bfloat16":
            self.keras.mixed_precision.set_global_policy("mixed_bfloat16")

    def _use_local_devices(self, keras: Any) -> None:
        """Train data-parallel over this host's devices where the engine can (before any engine op)."""
        if self.name == "tensorflow":
            import tensorflow as tf

            self.strategy = devices.tensorflow_strategy(tf, self.cfg.cpu_devices)
        elif self.name == "jax":
            devices.jax_distribution(keras, self.cfg.cpu_devices)
            self.even_parts = len(self.devices())
        else:
            import torch

            visible = torch.cuda.device_count() or self.cfg.cpu_devices
            if visible > 1:
                log.warning(
                    "backend=torch trains on one device (%s): Keras 3 has no data-parallel training "
                    "on PyTorch; %d devices are visible",
                    self.devices()[0],
                    visible,
                )

    def scope(self) -> Any:
        """Where variables must be created: the distribution strategy's scope, if any."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def build(self, model: DictConfig, input_shape: Tuple[int, ...], num_classes: int) -> None:
        self.num_classes = num_classes
        with self.scope():
            self._build(model, input_shape, num_classes)

    def _build(self, model: DictConfig, input_shape: Tuple[int, ...], num_classes: int) -> None:
        if "builder" in model:
            self.model = builder.build(model, "builder", input_shape, num_classes, self._wrong_model)
            return
        from kx.models import conv_batch_norm, keras_head, winograd

        layers = self.keras.layers
        channel_axis = 1 if self.image_layout == "channels_first" else -1
        stack: List[Any] = [self.keras.Input(shape=input_shape)]
        channels = input_shape[0] if self.image_layout == "channels_first" else input_shape[-1]
        for conv in model.conv_layers:
            conv_args = {
                "filters": conv.filters,
                "kernel_size": conv.kernel_size,
                "padding": str(conv.padding),
            }
            if model.batch_norm:
                norm_args = {"axis": channel_axis, "momentum": bn_momentum.momentum(model)}
                stack += conv_batch_norm.layers(conv_args, norm_args, channels)
            else:
                stack.append(winograd.layer(conv_args, channels))
            channels = conv.filters
            # max-pooling then ReLU: the same values and gradients (the two commute), ReLU on the pooled ones
            stack += [layers.MaxPooling2D(model.pool_size), layers.Activation("relu")]
        stack.append(layers.Flatten())
        for _ in range(model.dense_layers):
            stack += [layers.Dense(model.dense_units, activation="relu"), layers.Dropout(model.dropout)]
        stack += keras_head.classifier(num_classes)
        self.model = self.keras.Sequential(stack, name=model.name)

    def _wrong_model(self, net: Any) -> Optional[str]:
        """What makes a builder's result unusable here, or None."""
        if not isinstance(net, self.keras.Model):
            return (
                f"returned {type(net).__name__}, not a keras.Model (backend={self.name} trains Keras models)"
            )
        shape = tuple(net.output_shape) if not isinstance(net.output_shape, list) else None
        if shape is None or len(shape) != 2 or shape[1] != self.num_classes:
            return (
                f"built a model whose output shape is {net.output_shape}; expected (None, {self.num_classes})"
            )
        from kx.models import conv_batch_norm

        reason = conv_batch_norm.misplaced(net)
        return None if reason is None else f"built a model that {reason}"

    def _compile(self, data: Dataset, train: DictConfig) -> None:
        """Compile with kx's optimizer and schedule (:mod:`kx.backends.optim`) and ``backend.jit``."""
        if self.cluster.size > 1:
            steps = data_parallel_steps(
                train.batch_size, len(data.y_train), self.strategy.num_replicas_in_sync, "replicas"
            )
        else:  # what fit runs: every batch, the last partial one too (see _even)
            steps = math.ceil(devices.even_length(len(data.y_train), self.even_parts) / train.batch_size)
        jit_settings = {"auto": "auto", "on": True, "off": False}  # auto: Keras's own rule
        jit = jit_settings[str(self.cfg.get("jit", "auto"))]
        spec = optim.spec(train, steps, self.averages_weights)
        if spec.ema is not None:
            log.info("validating a moving average of the weights, momentum %.4f (train.ema)", spec.ema)
        with self.scope():
            self.model.compile(
                optimizer=keras_optim.optimizer(self.keras, spec),
                loss="sparse_categorical_crossentropy",
                metrics=[self.keras.metrics.SparseCategoricalAccuracy(name="acc")],
                jit_compile=jit,
                steps_per_execution=keras_steps.per_call(
                    self.cfg.get("steps_per_execution"),
                    self.name,
                    self.strategy is not None,
                    self.keras.__version__,
                ),
            )

    def fit(self, data: Dataset, train: DictConfig, monitor: EpochMonitor, checkpoint: Checkpoint) -> None:
        if not self.model.compiled:  # a resumed model comes compiled, with its optimizer state
            self._compile(data, train)
        if self.cluster.size > 1:
            keras_multi_worker.fit(self, data, train, monitor, checkpoint)
        elif monitor.epochs < train.epochs and not monitor.stop:
            with contextlib.suppress(_Stopped):  # a signal: the partial epoch is dropped, unvalidated
                self._fit(self._even(data, train.batch_size), train, monitor, checkpoint)
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def _even(self, data: Dataset, batch_size: int) -> Dataset:
        """Announce the data-parallel split; ``data`` with every set cut to a multiple of
        ``even_parts`` samples (see :attr:`even_parts`)."""
        parts, train, val = self.even_parts, len(data.y_train), len(data.y_val)
        note = f"; {train % parts} training and {val % parts} validation samples left out, so that every batch splits evenly"
        devices.announce(self.devices(), batch_size, train, note if train % parts or val % parts else "")
        train, val = devices.even_length(train, parts), devices.even_length(val, parts)
        return dataclasses.replace(
            data,
            x_train=data.x_train[:train],
            y_train=data.y_train[:train],
            x_val=data.x_val[:val],
            y_val=data.y_val[:val],
        )

    def _fit(self, data: Dataset, train: DictConfig, monitor: EpochMonitor, checkpoint: Checkpoint) -> None:
        """Keras's ``fit`` from the epoch after ``monitor.epochs``; on a terminal its progress bar
        comes first in the callbacks, so it ends its line before kx's epoch line."""
        progress = [self.keras.callbacks.ProgbarLogger()] if sys.stdout.isatty() else []
        self.model.fit(
            **self._inputs(data, train.batch_size),
            epochs=train.epochs,
            initial_epoch=monitor.epochs,
            verbose=1 if progress else 0,
            callbacks=[*progress, _monitor_callback(self.keras, self, monitor, checkpoint)],
        )

    def _inputs(self, data: Dataset, batch_size: int) -> Dict[str, Any]:
        """``fit``'s training and validation data: with ``backend.input_pipeline=tf_data`` (auto: on
        tensorflow on one device) ``tf.data`` pipelines, else the arrays, which Keras batches itself
        (and splits evenly over several devices, where tf.data's last batch would not)."""
        pipeline = str(self.cfg.get("input_pipeline", "auto"))
        if pipeline == "auto":
            pipeline = "tf_data" if self.name == "tensorflow" and self.strategy is None else "arrays"
        if pipeline == "arrays":
            return {
                "x": data.x_train,
                "y": data.y_train,
                "batch_size": batch_size,
                "validation_data": (data.x_val, data.y_val),
            }
        return {
            "x": self._tf_data(data.x_train, data.y_train, batch_size, shuffle=True),
            "shuffle": False,  # the pipeline shuffles; Keras would warn that it cannot
            "validation_data": self._tf_data(data.x_val, data.y_val, batch_size, shuffle=False),
        }

    def _tf_data(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool) -> Any:
        """Batches of ``(x, y)``, reshuffled every epoch if ``shuffle``, one batch prefetched.

        The indices are shuffled and each batch gathered, so the data is held once, not again in a
        shuffle buffer. Without tf.data's autotuner: the thread it starts per iterator sleeps
        between rounds, and an epoch's end waits for it when its iterator is torn down, longest on
        machines with few cores (Keras's own batching of the arrays has the same stall); without the
        static optimizations, which would serialize the captured arrays."""
        import tensorflow as tf

        images, labels = tf.constant(x), tf.constant(y)
        indices = tf.data.Dataset.range(len(y))
        if shuffle:
            indices = indices.shuffle(len(y), seed=self.seed, reshuffle_each_iteration=True)
        batches = indices.batch(batch_size).map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))
        options = tf.data.Options()
        options.autotune.enabled = False
        options.experimental_optimization.apply_default_optimizations = False
        return batches.prefetch(1).with_options(options)

    def save_state(self, folder: Path) -> None:
        self.model.save(folder / "last.keras")  # weights and optimizer state
        if self.best_weights is not None:
            np.savez(folder / "best_weights.npz", *self.best_weights)

    def load_state(self, folder: Path) -> None:
        from kx.models import conv_batch_norm  # the kx layers a checkpoint may hold

        custom = conv_batch_norm.custom_objects()
        with self.scope():
            self.model = self.keras.saving.load_model(folder / "last.keras", custom_objects=custom)
        best = folder / "best_weights.npz"
        if best.is_file():
            with np.load(best) as saved:
                self.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]

    def keep_best(self) -> None:
        with keras_optim.averaged(self.model):  # the weights the epoch was validated with
            self.best_weights = self.model.get_weights()

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if self.cluster.size > 1:
            return keras_multi_worker.predict(self, x, batch_size)
        return devices.padded_predict(self._predict, x, batch_size, self.even_parts)

    def _predict(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        return np.asarray(self.model.predict(x, batch_size=batch_size, verbose=0))

    def export(self, model_dir: Path, name: str, version: int) -> List[Path]:
        from kx.models import conv_batch_norm

        native = model_dir / f"{name}.keras"
        keras_own = conv_batch_norm.portable(self.model)  # loads in plain Keras, serves kx-free graphs
        keras_own.save(native)
        paths = [native]
        if self.name == "jax" and importlib.util.find_spec("tensorflow") is None:
            log.warning(
                "backend=jax: SavedModel export skipped, it needs TensorFlow to convert the JAX "
                'functions (pip install -e ".[tensorflow]"); %s is exported',
                native.name,
            )
        elif self.name in ("tensorflow", "jax"):
            serving = model_dir / name / str(version)
            keras_own.export(str(serving), format="tf_saved_model", verbose=False)
            paths.append(serving)
        return paths

    def devices(self) -> List[str]:
        if self.strategy is not None and self.cluster.size == 1:
            return [devices.short_name(d) for d in self.strategy.extended.worker_devices]
        if self.name == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.get_visible_devices("GPU")
            return [f"gpu:{i}" for i in range(len(gpus))] or ["cpu"]
        if self.name == "jax":
            import jax

            return [f"{d.platform}:{d.id}" for d in jax.devices()]
        import torch

        return ["cuda:0" if torch.cuda.is_available() else "cpu"]  # Keras trains on one device

    def versions(self) -> Dict[str, str]:
        engine = __import__(_PACKAGES[self.name])
        return {"keras": self.keras.__version__, self.name: engine.__version__}


class _Stopped(Exception):
    """Raised in the training loop after a signal; ``fit`` ends at once."""


def _monitor_callback(
    keras: Any, backend: KerasBackend, monitor: EpochMonitor, checkpoint: Checkpoint
) -> Any:
    """A Keras callback that feeds :class:`EpochMonitor`, keeps the best weights and checkpoints."""

    class MonitorCallback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            monitor.begin_epoch()

        def on_test_begin(self, logs: Any = None) -> None:
            """Validate the weights' moving average (``train.ema``), then train on from the weights
            reached. Only a second Ctrl-C skips :meth:`on_test_end`, and it ends the process; the
            checkpoint on disk was written before the swap."""
            self.validating = contextlib.ExitStack()
            self.validating.enter_context(keras_optim.averaged(self.model))

        def on_test_end(self, logs: Any = None) -> None:
            self.validating.close()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if monitor.interrupted:  # leave fit now: stop_training would still validate the epoch
                raise _Stopped

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if monitor.interrupted:  # a partial epoch: not recorded, the last checkpoint stands
                return
            backend.end_epoch(epoch + 1, logs or {}, monitor, checkpoint)
            if monitor.stop:
                self.model.stop_training = True

    return MonitorCallback()
