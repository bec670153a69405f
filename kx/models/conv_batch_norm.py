"""A convolution and the batch norm after it as one layer, so that float32 training on a CPU folds them.

In training, batch norm normalizes each channel of the convolution's output by that batch's mean
and variance. Both follow from the convolution's weights and the mean and covariance of its input
patches: for a patch ``p`` and a channel's weights ``w``, the output is ``w.p + b``, its batch mean
``w.E[p] + b`` and its variance ``w' Cov(p) w``. So the normalized output is one convolution with
the weights scaled per channel plus a per-channel shift, and the large convolution output is
never normalized in a pass of its own. Where a patch is small (a first layer on grey
images: 3x3 pixels) the patch moments cost little next to the passes they save
(``benchmarks/batch_norm.py``). The layer is the same network as ``Conv2D`` followed by
``BatchNormalization``: the same weights, function, gradients and moving statistics
(``tests/test_conv_batch_norm.py``); inference and every other case run the two sublayers as they
are. :func:`portable` gives exports Keras's own two layers.

Import this module only once ``KERAS_BACKEND`` is set: it imports Keras.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

from typing import Any, Dict, List, Optional

import keras

from kx.models import fused_batch_norm

MAX_FOLDED_PATCH = 9
"""Largest patch (kernel height x width x input channels) folded: 3x3 of one channel, the case measured
to pay. The patch moments grow with its square, the normalization they replace does not."""


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

    def compute_output_spec(self, inputs: Any) -> Any:
        return self.norm.compute_output_spec(self.conv.compute_output_spec(inputs))

    def call(self, inputs: Any, training: Any = None) -> Any:
        if training and self.norm.trainable and self._foldable(inputs):
            return self._folded(inputs)
        return self.norm(self.conv(inputs), training=training)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "conv": self.conv.get_config(), "norm": self.norm.get_config()}

    def _foldable(self, inputs: Any) -> bool:
        """Whether :meth:`_folded` computes this call: :func:`_folds`, and the fused kernel's own
        conditions on the inputs."""
        return _folds(self.conv, self.norm, inputs.shape[-1]) and self.norm.fused_format(inputs) == "NHWC"

    def _folded(self, inputs: Any) -> Any:
        """Batch norm of the convolution, computed as one convolution with scaled weights."""
        import tensorflow as tf

        conv, norm = self.conv, self.norm
        x = tf.cast(inputs, "float32")
        filters = conv.kernel.shape[-1]
        bias = conv.bias if conv.use_bias else tf.zeros((filters,), "float32")
        mean, variance = self._moments(x)
        mean = mean + bias  # the output's batch mean
        norm.update_moving(mean, variance)
        gamma, beta = norm.affine(filters)
        scale = gamma * tf.math.rsqrt(variance + norm.epsilon)
        outputs = tf.nn.conv2d(x, conv.kernel * scale, 1, conv.padding.upper())
        # the bias cancels; it stays in for a gradient of 0, not None (which optimizers warn about)
        return tf.nn.bias_add(outputs, beta + scale * (bias - mean))

    def _moments(self, x: Any) -> Any:
        """Each channel's batch mean (less the bias) and variance of the convolution's output, from the
        mean and covariance of its input patches."""
        import tensorflow as tf

        height, width, channels, filters = self.conv.kernel.shape
        size = height * width * channels
        picks = tf.reshape(tf.eye(size), (height, width, channels, size))  # each patch, flattened
        patches = tf.reshape(tf.nn.conv2d(x, picks, 1, self.conv.padding.upper()), (-1, size))
        patch_mean = tf.reduce_mean(patches, 0)
        centered = patches - patch_mean
        count = tf.cast(tf.shape(patches)[0], "float32")
        covariance = tf.matmul(centered, centered, transpose_a=True) / count
        weights = tf.reshape(self.conv.kernel, (size, filters))
        mean = tf.linalg.matvec(weights, patch_mean, transpose_a=True)
        variance = tf.reduce_sum(weights * tf.matmul(covariance, weights), 0)
        return mean, tf.maximum(variance, 0.0)  # a sum of signed products may round below 0


def _folds(conv: Any, norm: Any, channels: int) -> bool:
    """Whether training folds ``norm`` into ``conv`` on ``channels`` input channels: kx's fused batch
    norm over the last axis after a plain, linear, channels-last convolution with a small patch,
    computing in float32 on a CPU (where it was measured to pay)."""
    if not isinstance(norm, fused_batch_norm.FusedBatchNormalization) or norm.synchronized:
        return False
    if getattr(norm, "renorm", False):  # Keras >= 3.7
        return False
    plain = conv.strides == (1, 1) and conv.dilation_rate == (1, 1) and conv.groups == 1
    linear = conv.activation is keras.activations.linear and conv.activity_regularizer is None
    small = conv.kernel_size[0] * conv.kernel_size[1] * channels <= MAX_FOLDED_PATCH
    layout = conv.data_format == "channels_last" and norm.axis in (-1, 3)
    return plain and linear and small and layout and _pays(conv.compute_dtype)


def _pays(compute_dtype: str) -> bool:
    """Whether the fold pays: in float32 on a CPU. Under bfloat16 it would have to compute the
    convolution in float32 (the batch-norm gradient's terms nearly cancel, which bfloat16 does not
    resolve), and that measured slower than the two layers; GPUs were not measured (and round matrix
    products to TF32 by default)."""
    import tensorflow as tf

    return compute_dtype == "float32" and not tf.config.list_logical_devices("GPU")


def layers(conv: Dict[str, Any], norm: Dict[str, Any], channels: int) -> List[Any]:
    """A convolution on ``channels`` input channels and its batch norm: one
    :class:`ConvBatchNormalization` where training folds them (:func:`_folds`), else the convolution
    and :func:`kx.models.fused_batch_norm.layer`."""
    pair = [keras.layers.Conv2D(**conv), fused_batch_norm.layer(**norm)]
    if keras.backend.backend() == "tensorflow" and _folds(pair[0], pair[1], channels):
        return [ConvBatchNormalization(pair[0].get_config(), pair[1].get_config())]
    return pair


def misplaced(model: Any) -> Optional[str]:
    """Why ``model``'s :class:`ConvBatchNormalization` layers cannot export as Keras's own, or None:
    :func:`portable` expands them only as layers of a ``keras.Sequential``."""
    top = list(model.layers) if isinstance(model, keras.Sequential) else []
    if any(
        isinstance(sub, ConvBatchNormalization) and sub not in top
        for sub in fused_batch_norm.layers_of(model)
    ):
        return (
            "has a ConvBatchNormalization outside a keras.Sequential's own layers; it exports only there "
            "(kx.models.conv_batch_norm.layers); use keras.layers.Conv2D and BatchNormalization elsewhere"
        )
    return None


def portable(model: Any) -> Any:
    """``model``, or a copy with Keras's own layers in place of kx's (same configs and weights), which
    plain Keras loads without kx: each :class:`ConvBatchNormalization` of a ``Sequential`` becomes its
    two layers, and :func:`kx.models.fused_batch_norm.portable` does the rest."""
    reason = misplaced(model)
    if reason is not None:
        raise ValueError(f"model {model.name!r} {reason}")
    if not any(isinstance(sub, ConvBatchNormalization) for sub in fused_batch_norm.layers_of(model)):
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
