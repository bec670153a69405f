"""Batch normalization on TensorFlow's fused kernel, for kx's Keras models on backend=tensorflow.

Keras 3 normalizes with separate moment, subtract and scale ops (around casts to float32 under
bfloat16); on TensorFlow's CPU kernels those ops take a large share of the reference CNN's
training step.
:class:`FusedBatchNormalization` is Keras's layer, with the same weights, config and arithmetic,
computed by TensorFlow's fused kernel, the one tf.keras used by default (``benchmarks/batch_norm.py``
measures the two side by side). Where the kernel does not apply (another backend, a mask, renorm,
synchronized statistics, not 4-D) it is Keras's layer unchanged.

Import this module only once ``KERAS_BACKEND`` is set: it imports Keras. :func:`layer` picks the
class for the running backend; :func:`kx.models.conv_batch_norm.portable` gives an export Keras's own
batch norm (and Keras's own layers for kx's others, through :func:`replaced`), so that an exported
``.keras`` file loads in plain Keras.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

from typing import Any, Dict, Iterator, Optional

import keras

_FUSABLE_DTYPES = ("float32", "bfloat16", "float16")


@keras.saving.register_keras_serializable(package="kx")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` on ``tf.compat.v1.nn.fused_batch_norm``."""

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        data_format = self.fused_format(inputs, mask)
        if data_format is None:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        gamma, beta = self.affine(inputs.shape[self.axis])
        if not (training and self.trainable):
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                gamma,
                beta,
                mean=self.moving_mean,
                variance=self.moving_variance,
                epsilon=self.epsilon,
                data_format=data_format,
                is_training=False,
            )
            return tf.cast(outputs, self.compute_dtype)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format=data_format, is_training=True
        )
        count = tf.cast(tf.size(inputs) // inputs.shape[self.axis], "float32")
        self.update_moving(mean, variance * (count - 1.0) / count)  # the kernel's variance is unbiased
        return tf.cast(outputs, self.compute_dtype)

    def affine(self, channels: int) -> Any:
        """``(gamma, beta)``: the weights, or 1 and 0 where ``scale`` or ``center`` is off."""
        import tensorflow as tf

        gamma = self.gamma if self.scale else tf.ones((channels,), "float32")
        beta = self.beta if self.center else tf.zeros((channels,), "float32")
        return gamma, beta

    def update_moving(self, mean: Any, variance: Any) -> None:
        """Moves the moving statistics toward a batch's mean and (biased) variance, as Keras does."""
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))

    def fused_format(self, inputs: Any, mask: Any = None) -> Optional[str]:
        """``"NHWC"`` or ``"NCHW"`` where the fused kernel computes this call, else None."""
        renorm = getattr(self, "renorm", False)  # Keras >= 3.7 (the TensorFlow 2.19 image has 3.6)
        if keras.backend.backend() != "tensorflow" or mask is not None or renorm or self.synchronized:
            return None
        if len(inputs.shape) != 4 or keras.backend.standardize_dtype(inputs.dtype) not in _FUSABLE_DTYPES:
            return None
        return {3: "NHWC", 1: "NCHW"}.get(self.axis % 4)


def layer(**kwargs: Any) -> Any:
    """A batch-norm layer: :class:`FusedBatchNormalization` on TensorFlow, Keras's own elsewhere."""
    if keras.backend.backend() == "tensorflow":
        return FusedBatchNormalization(**kwargs)
    return keras.layers.BatchNormalization(**kwargs)


def replaced(model: Any, classes: Dict[type, type]) -> Any:
    """``model`` itself, or where it has layers of a class among ``classes``' keys a copy with that
    key's value in their place, from the same config and with the same weights."""
    if not any(isinstance(sub, tuple(classes)) for sub in layers_of(model)):
        return model

    def clone(sub: Any) -> Any:
        cls = next((new for old, new in classes.items() if isinstance(sub, old)), type(sub))
        return cls.from_config(sub.get_config())

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def layers_of(model: Any) -> Iterator[Any]:
    """Every layer of ``model``, inside nested models too."""
    for sub in model.layers:
        yield sub
        if isinstance(sub, keras.Model):
            yield from layers_of(sub)
