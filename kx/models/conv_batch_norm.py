"""A convolution and the batch norm after it as one layer, so that training on TensorFlow folds them.

In training, batch norm normalizes each channel of the convolution's output by that batch's mean
and variance. Both follow from the convolution's weights and the mean and covariance of its input
patches: for a patch ``p`` and a channel's weights ``w``, the output is ``w.p + b``, its batch mean
``w.E[p] + b`` and its variance ``w' Cov(p) w``. So the normalized output is one convolution with
the weights scaled per channel plus a per-channel shift, and the large convolution output is
never normalized in a pass of its own. Where a patch is small (a first layer on images: 3x3 pixels
of 1-3 channels) the patch moments cost little next to the passes they save
(``benchmarks/step_profile.py``). The layer is the same network as ``Conv2D`` followed by
``BatchNormalization``: the same weights, function, gradients and moving statistics
(``tests/test_conv_batch_norm.py``); inference and every other case run the two sublayers as they
are. :func:`portable` gives exports Keras's own two layers.

Import this module only once ``KERAS_BACKEND`` is set: it imports Keras.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

from typing import Any, Dict, List

import keras

from kx.models import fused_batch_norm

MAX_FOLDED_PATCH = 27
"""Largest patch (kernel height x width x input channels) folded: a 3x3 RGB patch. Above it the patch
covariance costs more than the normalization it replaces."""


@keras.saving.register_keras_serializable(package="kx")
class ConvBatchNormalization(keras.layers.Layer):
    """``keras.layers.Conv2D(**conv)`` then :func:`kx.models.fused_batch_norm.layer` ``(**norm)``."""

    def __init__(self, conv: Dict[str, Any], norm: Dict[str, Any], **kwargs: Any) -> None:
        # float32 and no autocasting: the fold reads the variables as they are; the sublayers keep the
        # model's dtype policy and cast for themselves
        super().__init__(autocast=False, **{**kwargs, "dtype": "float32"})
        self.conv = keras.layers.Conv2D(**conv)
        self.norm = fused_batch_norm.layer(**norm)

    def build(self, input_shape: Any) -> None:
        self.conv.build(input_shape)
        self.norm.build(self.conv.compute_output_shape(input_shape))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.conv.compute_output_shape(input_shape)

    def call(self, inputs: Any, training: Any = None) -> Any:
        if training and self.norm.trainable and self._foldable(inputs):
            return self._folded(inputs)
        return self.norm(self.conv(inputs), training=training)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "conv": self.conv.get_config(), "norm": self.norm.get_config()}

    def _foldable(self, inputs: Any) -> bool:
        """Whether :meth:`_folded` computes this call: TensorFlow, a plain channels-last convolution with
        a small patch, and the batch norm over its channels."""
        conv, norm = self.conv, self.norm
        if not isinstance(norm, fused_batch_norm.FusedBatchNormalization) or norm.synchronized:
            return False
        plain = conv.strides == (1, 1) and conv.dilation_rate == (1, 1) and conv.groups == 1
        channels_last = conv.data_format == "channels_last" and norm.axis % 4 == 3
        linear = conv.activation is keras.activations.linear
        patch = conv.kernel_size[0] * conv.kernel_size[1] * inputs.shape[-1]
        return plain and channels_last and linear and len(inputs.shape) == 4 and patch <= MAX_FOLDED_PATCH

    def _folded(self, inputs: Any) -> Any:
        """Batch norm of the convolution, computed as one convolution with scaled weights."""
        import tensorflow as tf

        conv, norm = self.conv, self.norm
        x = tf.cast(inputs, "float32")
        height, width, channels, filters = conv.kernel.shape
        size = height * width * channels
        padding = conv.padding.upper()
        picks = tf.reshape(tf.eye(size), (height, width, channels, size))  # each patch, flattened
        patches = tf.reshape(tf.nn.conv2d(x, picks, 1, padding), (-1, size))
        patch_mean = tf.reduce_mean(patches, 0)
        centered = patches - patch_mean
        covariance = tf.matmul(centered, centered, transpose_a=True) / tf.cast(
            tf.shape(patches)[0], "float32"
        )
        weights = tf.reshape(conv.kernel, (size, filters))
        bias = conv.bias if conv.use_bias else tf.zeros((filters,), "float32")
        mean = tf.linalg.matvec(weights, patch_mean, transpose_a=True) + bias
        variance = tf.reduce_sum(weights * tf.matmul(covariance, weights), 0)
        self._update_moving(mean, variance)
        gamma = norm.gamma if norm.scale else tf.ones((filters,), "float32")
        beta = norm.beta if norm.center else tf.zeros((filters,), "float32")
        scale = gamma * tf.math.rsqrt(variance + norm.epsilon)
        outputs = tf.nn.bias_add(
            tf.nn.conv2d(x, conv.kernel * scale, 1, padding), beta + scale * (bias - mean)
        )
        return tf.cast(outputs, conv.compute_dtype)  # the bias cancels; float32 keeps the gradients exact

    def _update_moving(self, mean: Any, variance: Any) -> None:
        """The moving statistics, as Keras's layer updates them from the batch's mean and variance."""
        norm = self.norm
        norm.moving_mean.assign(norm.moving_mean * norm.momentum + mean * (1.0 - norm.momentum))
        norm.moving_variance.assign(norm.moving_variance * norm.momentum + variance * (1.0 - norm.momentum))


def layers(conv: Dict[str, Any], norm: Dict[str, Any]) -> List[Any]:
    """A convolution and its batch norm: one :class:`ConvBatchNormalization` on TensorFlow, Keras's two
    layers elsewhere."""
    if keras.backend.backend() == "tensorflow":
        return [ConvBatchNormalization(conv, norm)]
    return [keras.layers.Conv2D(**conv), fused_batch_norm.layer(**norm)]


def portable(model: Any) -> Any:
    """``model``, or a copy with Keras's own layers in place of kx's (same configs and weights), which
    plain Keras loads without kx: each :class:`ConvBatchNormalization` of a ``Sequential`` becomes its
    two layers, and :func:`kx.models.fused_batch_norm.portable` does the rest."""
    if not isinstance(model, keras.Sequential) or not any(
        isinstance(sub, ConvBatchNormalization) for sub in model.layers
    ):
        return fused_batch_norm.portable(model)
    stack: List[Any] = [keras.Input(shape=model.input_shape[1:])]
    for sub in model.layers:
        if isinstance(sub, ConvBatchNormalization):
            stack.append(keras.layers.Conv2D.from_config(sub.conv.get_config()))
            stack.append(keras.layers.BatchNormalization.from_config(sub.norm.get_config()))
        else:
            stack.append(type(sub).from_config(sub.get_config()))
    copy = keras.Sequential(stack, name=model.name)
    copy.set_weights(model.get_weights())
    return fused_batch_norm.portable(copy)
