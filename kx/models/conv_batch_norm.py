"""A convolution and the batch norm after it as one layer, so that training on a CPU folds them.

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

The convolution computes in the model's compute dtype, bfloat16 under mixed precision. Its input is
first centred on the mean value of its patches and the moments are taken of the rounded values it
multiplies, so that the gradient's terms for the batch statistics, which nearly cancel, cancel in
bfloat16 as they do in Keras's batch norm (which computes in float32).

Import this module only once ``KERAS_BACKEND`` is set: it imports Keras.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

from typing import Any, Dict, List, Optional

import keras

from kx.models import conv_checks, fused_batch_norm, winograd

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

        conv, norm, compute = self.conv, self.norm, self.conv.compute_dtype
        x, offset = self._centered(tf.cast(inputs, "float32"))
        x = tf.cast(x, compute)  # the moments are of the values the convolution multiplies
        patch_mean, covariance = self._patch_moments(tf.cast(x, "float32"))
        filters = conv.kernel.shape[-1]
        weights = tf.reshape(conv.kernel, (-1, filters))
        bias = conv.bias if conv.use_bias else tf.zeros((filters,), "float32")
        # of the float32 weights: the output's variance is off only by the rounding of the scaled
        # kernel; a sum of signed products, which may round below 0
        variance = tf.maximum(tf.reduce_sum(weights * tf.matmul(covariance, weights), 0), 0.0)
        uncentered = tf.reduce_sum(conv.kernel * offset[:, None], (0, 1, 2))  # the offset's share
        mean = tf.linalg.matvec(weights, patch_mean, transpose_a=True) + uncentered + bias
        norm.update_moving(mean, variance)
        gamma, beta = norm.affine(filters)
        kernel = tf.cast(conv.kernel * (gamma * tf.math.rsqrt(variance + norm.epsilon)), compute)
        # the shift centres what the rounded kernel computes; the bias cancels in batch norm, and
        # 0 * bias keeps its gradient 0, not None (which optimizers warn about)
        computed = tf.reshape(tf.cast(kernel, "float32"), (-1, filters))
        shift = beta - tf.linalg.matvec(computed, patch_mean, transpose_a=True) + 0.0 * bias
        return _shifted(tf.nn.conv2d(x, kernel, 1, "VALID"), tf.cast(shift, compute))

    def _centered(self, x: Any) -> Any:
        """``x`` zero-padded as the convolution pads it, less the mean value of its patches per
        channel (also returned): the same output, from patches whose mean is near 0, so that the
        gradient's terms for the batch mean do not cancel at the scale of the pixels (which bfloat16
        cannot resolve)."""
        import tensorflow as tf

        if self.conv.padding == "same":
            rows, cols = (size - 1 for size in self.conv.kernel_size)
            x = tf.pad(x, [[0, 0], [rows // 2, rows - rows // 2], [cols // 2, cols - cols // 2], [0, 0]])
        patches = tf.nn.avg_pool2d(x, self.conv.kernel_size, 1, "VALID")  # each patch's mean
        offset = tf.stop_gradient(tf.reduce_mean(patches, (0, 1, 2)))
        return x - offset, offset

    def _patch_moments(self, x: Any) -> Any:
        """The mean and covariance of the input patches of a 'valid' convolution on ``x``."""
        import tensorflow as tf

        height, width, channels, _ = self.conv.kernel.shape
        size = height * width * channels
        picks = tf.reshape(tf.eye(size), (height, width, channels, size))  # each patch, flattened
        patches = tf.nn.conv2d(x, picks, 1, "VALID")
        patches = tf.reshape(patches, (tf.shape(patches)[0], -1, size))
        count = tf.cast(tf.shape(patches)[0] * tf.shape(patches)[1], "float32")
        mean = tf.reduce_sum(patches, (0, 1)) / count
        # a product per image, then their sum: faster than one product over all the patches; the
        # patches' mean is near 0 (centred input), so the raw second moment less the mean's square
        # does not cancel
        second = tf.reduce_sum(tf.matmul(patches, patches, transpose_a=True), 0) / count
        return mean, second - mean[:, None] * mean[None, :]


def _shifted(outputs: Any, shift: Any) -> Any:
    """``outputs`` plus a per-channel ``shift``, whose gradient sums the outputs' gradient as a product
    with ones, which oneDNN accumulates in float32: TensorFlow's own gradient of ``bias_add`` sums
    bfloat16 in bfloat16, off by percents over a batch."""
    import tensorflow as tf

    @tf.custom_gradient
    def add(outputs: Any, shift: Any) -> Any:
        def gradient(upstream: Any) -> Any:
            flat = tf.reshape(upstream, (-1, upstream.shape[-1]))
            ones = tf.ones((1, tf.shape(flat)[0]), upstream.dtype)
            return upstream, tf.reshape(tf.matmul(ones, flat), (-1,))

        return tf.nn.bias_add(outputs, shift), gradient

    return add(outputs, shift)


def _folds(conv: Any, norm: Any, channels: int) -> bool:
    """Whether training folds ``norm`` into ``conv`` on ``channels`` input channels: kx's fused batch
    norm over the last axis after a plain, linear, channels-last convolution with a small patch,
    where the fold was measured to pay (:func:`_pays`)."""
    if not isinstance(norm, fused_batch_norm.FusedBatchNormalization) or norm.synchronized:
        return False
    if getattr(norm, "renorm", False):  # Keras >= 3.7
        return False
    linear = conv.activation is keras.activations.linear and conv.activity_regularizer is None
    small = conv.kernel_size[0] * conv.kernel_size[1] * channels <= MAX_FOLDED_PATCH
    layout = conv.data_format == "channels_last" and norm.axis in (-1, 3)
    return conv_checks.plain(conv) and linear and small and layout and _pays(conv.compute_dtype)


def _pays(compute_dtype: str) -> bool:
    """Whether the fold pays: on a CPU, in float32 or bfloat16 (measured there); GPUs were not
    measured (and round float32 matrix products to TF32 by default)."""
    return compute_dtype in ("float32", "bfloat16") and conv_checks.on_cpu()


def layers(conv: Dict[str, Any], norm: Dict[str, Any], channels: int) -> List[Any]:
    """A convolution on ``channels`` input channels and its batch norm: one
    :class:`ConvBatchNormalization` where training folds them (:func:`_folds`), else the convolution
    (:func:`kx.models.winograd.layer`) and :func:`kx.models.fused_batch_norm.layer`."""
    pair = [winograd.layer(conv, channels), fused_batch_norm.layer(**norm)]
    if keras.backend.backend() == "tensorflow" and _folds(pair[0], pair[1], channels):
        return [ConvBatchNormalization(pair[0].get_config(), pair[1].get_config())]
    return pair


def custom_objects() -> Dict[str, type]:
    """kx's Keras layers by the names a saved model gives them (``kx>Class``): what loading a
    checkpoint of a kx model needs."""
    classes = (ConvBatchNormalization, fused_batch_norm.FusedBatchNormalization, winograd.WinogradConv2D)
    return {f"kx>{cls.__name__}": cls for cls in classes}


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
    two layers, each :class:`kx.models.fused_batch_norm.FusedBatchNormalization` Keras's batch norm
    and each :class:`kx.models.winograd.WinogradConv2D` Keras's ``Conv2D``."""
    reason = misplaced(model)
    if reason is not None:
        raise ValueError(f"model {model.name!r} {reason}")
    if any(isinstance(sub, ConvBatchNormalization) for sub in fused_batch_norm.layers_of(model)):
        model = _expanded(model)
    keras_own = {
        fused_batch_norm.FusedBatchNormalization: keras.layers.BatchNormalization,
        winograd.WinogradConv2D: keras.layers.Conv2D,
    }
    return fused_batch_norm.replaced(model, keras_own)


def _expanded(model: Any) -> Any:
    """A copy of the ``Sequential`` ``model`` with each :class:`ConvBatchNormalization` as its two
    layers, from their configs, and the same weights."""
    stack: List[Any] = [keras.Input(shape=model.input_shape[1:])]
    for sub in model.layers:
        if isinstance(sub, ConvBatchNormalization):
            stack.append(keras.layers.Conv2D.from_config(sub.conv.get_config()))
            stack.append(keras.layers.BatchNormalization.from_config(sub.norm.get_config()))
        else:
            stack.append(type(sub).from_config(sub.get_config()))
    copy = keras.Sequential(stack, name=model.name)
    copy.set_weights(model.get_weights())
    return copy
