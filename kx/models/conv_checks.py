"""The conditions kx's own convolution layers share (the batch norm folded into a convolution, and
Winograd's): which convolutions they compute, and where. Python 3.8 syntax."""

from typing import Any


def plain(conv: Any) -> bool:
    """Whether the Keras convolution ``conv`` has stride 1, no dilation and one group."""
    return conv.strides == (1, 1) and conv.dilation_rate == (1, 1) and conv.groups == 1


def on_cpu() -> bool:
    """Whether TensorFlow computes on a CPU here (it sees no GPU): where kx's layers were measured."""
    import tensorflow as tf

    return not tf.config.list_logical_devices("GPU")
