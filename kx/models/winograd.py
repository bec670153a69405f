"""A 3x3 convolution computed with Winograd's minimal filtering, F(6x6, 3x3) or F(4x4, 3x3), for
float32 on a CPU.

A 3x3 convolution multiplies 9 values per output and channel pair. Winograd's F(m x m, 3x3)
computes an m x m block of outputs from an (m + 2) x (m + 2) tile of the input: the tile and the
kernel are each transformed by a fixed matrix, multiplied elementwise ((m + 2)^2 products for m^2
outputs) and transformed back. Over the channels the elementwise products are (m + 2)^2 matrix
products, so the convolution becomes 4 (m = 4) or 5 (m = 6) times fewer multiplications in large
matrix products plus the transforms, which are small products with the constant matrices. The
gradients are the same algebra's (TensorFlow differentiates the products and transforms), so
training's three convolutions (the output, the input's gradient and the kernel's) all take the
cheaper path (``benchmarks/winograd.py``). kx takes the larger blocks where they make up the
output whole, else the smaller (:mod:`kx.models.winograd_algorithms`).

The arithmetic differs from a direct convolution only by rounding, more of it for the larger
blocks (bounded in ``tests/test_winograd.py``). It is used only in float32 (bfloat16 would round
the transformed values too coarsely) and on an x86 CPU with AVX2 but not AVX-512, for a
convolution with enough input channels and filters that the products outweigh the transforms,
and an output of whole blocks (``benchmarks/winograd.py --grid``). The layer is
``keras.layers.Conv2D`` with the same weights and config; exports carry Keras's own
(:func:`kx.models.conv_batch_norm.portable`).

Import this module only once ``KERAS_BACKEND`` is set: it imports Keras.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import os
from typing import Any, Dict

import keras
import numpy as np

from kx.cpu import probe
from kx.models import conv_checks
from kx.models.winograd_algorithms import Algorithm, algorithm_for

MIN_CHANNELS, MIN_FILTERS = 32, 64
"""Fewest input channels and filters computed this way: the transforms cost in proportion to the
channels plus the filters, the products they save to their product, so a layer needs many of both
(measured for F(4x4): 32 to 64 channels pays, 16 to 32 and 32 to 32 do not; F(6x6), with larger
tiles, pays from fewer channels and filters, and kx keeps the one rule)."""


@keras.saving.register_keras_serializable(package="kx")
class WinogradConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` whose convolution is computed by :func:`convolve` where it applies
    (:func:`applies`), and by Keras otherwise."""

    def convolution_op(self, inputs: Any, kernel: Any) -> Any:
        algorithm = algorithm_for(inputs.shape, self.padding) if applies(self, kernel.shape[2]) else None
        if algorithm is None:
            return super().convolution_op(inputs, kernel)
        return convolve(inputs, kernel, self.padding, algorithm)


def applies(conv: Any, channels: int) -> bool:
    """Whether :func:`convolve` computes ``conv`` on ``channels`` input channels (where the output
    is whole blocks: :func:`~kx.models.winograd_algorithms.algorithm_for`): TensorFlow, float32, a
    plain channels-last 3x3 convolution with :data:`MIN_FILTERS` or more on :data:`MIN_CHANNELS`
    or more, on a CPU where it was measured (:func:`measured_cpu`)."""
    if keras.backend.backend() != "tensorflow" or conv.compute_dtype != "float32":
        return False
    shape = tuple(conv.kernel_size) == (3, 3) and conv.data_format == "channels_last"
    wide = channels >= MIN_CHANNELS and conv.filters >= MIN_FILTERS
    return shape and wide and conv_checks.plain(conv) and measured_cpu() and conv_checks.on_cpu()


def measured_cpu() -> bool:
    """Whether this is the kind of CPU Winograd was measured faster on: x86 with AVX2 and oneDNN's
    kernels (TensorFlow's default there), without AVX-512: with it oneDNN's own convolutions run
    twice as fast, and as fast as this."""
    cpu = probe()
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").lower() not in ("0", "false")
    return "avx2" in cpu.flags and not cpu.avx512 and onednn


def convolve(x: Any, kernel: Any, padding: str, algorithm: Algorithm) -> Any:
    """``tf.nn.conv2d(x, kernel, 1, padding)`` for a 3x3 ``kernel`` and a channels-last ``x`` whose
    output is whole blocks of ``algorithm``
    (:func:`~kx.models.winograd_algorithms.fitting`)."""
    import tensorflow as tf

    if padding == "same":
        x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    out, tile = algorithm.out, algorithm.out + 2
    rows, cols = (x.shape[1] - 2) // out, (x.shape[2] - 2) // out  # blocks of outputs
    channels, filters = kernel.shape[2], kernel.shape[3]
    images = tf.shape(x)[0]
    # each tile, its values first: [tile * tile, tiles, channels]
    tiles = tf.image.extract_patches(x, [1, tile, tile, 1], [1, out, out, 1], [1, 1, 1, 1], "VALID")
    tiles = tf.transpose(tf.reshape(tiles, (-1, tile * tile, channels)), (1, 0, 2))
    transformed = _transform(algorithm.tile_transform, tiles)
    weights = _transform(algorithm.kernel_transform, tf.reshape(kernel, (9, channels, filters)))
    products = tf.matmul(transformed, weights)  # [tile * tile, tiles, filters]
    outputs = tf.reshape(
        _transform(algorithm.output_transform, products), (out, out, images, rows, cols, filters)
    )
    return tf.reshape(tf.transpose(outputs, (2, 3, 0, 4, 1, 5)), (images, rows * out, cols * out, filters))


def _transform(matrix: np.ndarray, values: Any) -> Any:
    """``matrix @ tile @ matrix.T`` for each tile and channel of ``values`` (its first axis: a tile's
    values, row by row): a product over the tiles' rows, then one over their columns, batched by row
    (faster than one product with the Kronecker product, which multiplies more)."""
    import tensorflow as tf

    outs, size = matrix.shape
    left = tf.constant(matrix)
    rows = tf.matmul(left, tf.reshape(values, (size, -1)))  # [outs, size * the rest]
    both = tf.matmul(tf.broadcast_to(left, (outs, outs, size)), tf.reshape(rows, (outs, size, -1)))
    return tf.reshape(both, (outs * outs, -1, values.shape[-1]))


def layer(conv: Dict[str, Any], channels: int) -> Any:
    """A convolution on ``channels`` input channels: :class:`WinogradConv2D` where it applies, else
    ``keras.layers.Conv2D``; either way named as Keras names a ``Conv2D``."""
    plain = keras.layers.Conv2D(**conv)
    return WinogradConv2D.from_config(plain.get_config()) if applies(plain, channels) else plain
