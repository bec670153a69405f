"""Keras 3 on TensorFlow, JAX or PyTorch: the engine is ``backend.name``.

``KERAS_BACKEND`` must be set before Keras is first imported, so nothing here imports Keras at
module level.
"""

import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
from omegaconf import DictConfig

from kx.backends.base import Backend, BackendError
from kx.backends.monitor import EpochMonitor
from kx.data import Dataset

_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


class KerasBackend(Backend):
    """Builds a ``keras.Sequential`` from the model config and trains it with ``fit``."""

    def prepare(self, seed: int, deterministic: bool) -> None:
        loaded = sys.modules.get("keras")
        if loaded is not None and loaded.backend.backend() != self.name:
            raise BackendError(
                f"Keras is already running on {loaded.backend.backend()!r} in this "
                f"process; backend={self.name} needs a fresh process."
            )
        os.environ["KERAS_BACKEND"] = self.name
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep the log readable for regexes
        try:
            import keras
        except ImportError as err:
            raise BackendError(
                f"backend={self.name} needs Keras and {_PACKAGES[self.name]}, which "
                f"are not installed ({err}). Install them with "
                f"`pip install -e .[{self.name}]`."
            ) from None
        self.keras = keras
        keras.config.set_image_data_format(self.image_layout)
        keras.utils.set_random_seed(seed)
        if deterministic and self.name == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()

    def build(self, model: DictConfig, input_shape: Tuple[int, ...], num_classes: int) -> None:
        layers = self.keras.layers
        channel_axis = 1 if self.image_layout == "channels_first" else -1
        stack: List[Any] = [self.keras.Input(shape=input_shape)]
        for conv in model.conv_layers:
            stack.append(layers.Conv2D(conv.filters, conv.kernel_size, padding=str(conv.padding)))
            if model.batch_norm:
                stack.append(layers.BatchNormalization(axis=channel_axis))
            stack += [layers.Activation("relu"), layers.MaxPooling2D(model.pool_size)]
        stack.append(layers.Flatten())
        for _ in range(model.dense_layers):
            stack += [layers.Dense(model.dense_units, activation="relu"), layers.Dropout(model.dropout)]
        stack.append(layers.Dense(num_classes, activation="softmax"))
        self.model = self.keras.Sequential(stack, name=model.name)

    def _optimizer(self, train: DictConfig) -> Any:
        optimizers = self.keras.optimizers
        kind = str(train.optimizer)
        if kind == "sgd":
            return optimizers.SGD(train.learning_rate, momentum=train.momentum, nesterov=train.nesterov)
        if kind == "rmsprop":
            return optimizers.RMSprop(train.learning_rate)
        return optimizers.Adam(train.learning_rate)

    def fit(self, data: Dataset, train: DictConfig, monitor: EpochMonitor) -> None:
        keras = self.keras
        self.model.compile(
            optimizer=self._optimizer(train),
            loss="sparse_categorical_crossentropy",
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
        )
        self.model.fit(
            data.x_train,
            data.y_train,
            batch_size=train.batch_size,
            epochs=train.epochs,
            validation_data=(data.x_val, data.y_val),
            verbose=1 if sys.stdout.isatty() else 0,
            callbacks=[_monitor_callback(keras, monitor)],
        )

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return np.asarray(self.model.predict(x, batch_size=batch_size, verbose=0))

    def export(self, model_dir: Path, name: str, version: int) -> List[Path]:
        native = model_dir / f"{name}.keras"
        self.model.save(native)
        paths = [native]
        if self.name in ("tensorflow", "jax"):
            serving = model_dir / name / str(version)
            self.model.export(str(serving), format="tf_saved_model", verbose=False)
            paths.append(serving)
        return paths

    def load_export(self, model_dir: Path, name: str, version: int) -> Callable[[np.ndarray], np.ndarray]:
        if self.name in ("tensorflow", "jax"):
            import tensorflow as tf

            served = tf.saved_model.load(str(model_dir / name / str(version)))
            return lambda x: served.serve(tf.constant(x)).numpy()
        model = self.keras.saving.load_model(model_dir / f"{name}.keras")
        return lambda x: np.asarray(model.predict(x, verbose=0))

    def versions(self) -> Dict[str, str]:
        engine = __import__(_PACKAGES[self.name])
        return {"keras": self.keras.__version__, self.name: engine.__version__}


def _monitor_callback(keras: Any, monitor: EpochMonitor) -> Any:
    """A Keras callback that feeds :class:`EpochMonitor` and restores the best weights at the end."""

    class MonitorCallback(keras.callbacks.Callback):
        best_weights = None

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            monitor.begin_epoch()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if monitor.end_epoch(epoch + 1, logs or {}):
                self.best_weights = self.model.get_weights()
            if monitor.stop:
                self.model.stop_training = True

        def on_train_end(self, logs: Any = None) -> None:
            if monitor.restore_best and self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return MonitorCallback()
