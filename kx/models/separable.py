"""A depthwise-separable convolutional network (MobileNet-style), the same in Keras and in Gluon.

Per entry of ``filters``: a 3x3 depthwise convolution and a 1x1 pointwise one, each with batch norm
and ReLU, then a 2x2 max-pool; global average pooling, dropout and a dense softmax layer (logits
for Gluon) end it. A plain 3x3 conv stem gives the depthwise layers channels to work on.
"""

from typing import Any, Sequence, Tuple

from kx._compat import import_mxnet


def keras_net(
    input_shape: Tuple[int, ...],
    num_classes: int,
    filters: Sequence[int] = (32, 64, 128),
    stem: int = 16,
    dropout: float = 0.2,
    bn_momentum: float = 0.9,
) -> Any:
    import keras
    from keras import layers

    from kx.models import fused_batch_norm, keras_head

    axis = keras_head.channel_axis()
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(stem, 3, padding="same", use_bias=False)(inputs)
    x = layers.Activation("relu")(fused_batch_norm.layer(axis=axis, momentum=bn_momentum)(x))
    for width in filters:
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = layers.Activation("relu")(fused_batch_norm.layer(axis=axis, momentum=bn_momentum)(x))
        x = layers.Conv2D(width, 1, use_bias=False)(x)
        x = layers.Activation("relu")(fused_batch_norm.layer(axis=axis, momentum=bn_momentum)(x))
        if min(x.shape[1:3] if axis == -1 else x.shape[2:4]) >= 2:
            x = layers.MaxPooling2D(2)(x)
    return keras.Model(inputs, keras_head.pooled_classifier(x, num_classes, dropout), name="separable")


def gluon_net(
    input_shape: Tuple[int, ...],
    num_classes: int,
    filters: Sequence[int] = (32, 64, 128),
    stem: int = 16,
    dropout: float = 0.2,
    bn_momentum: float = 0.9,
) -> Any:
    nn = import_mxnet().gluon.nn
    net = nn.HybridSequential()
    net.add(nn.Conv2D(stem, 3, padding=1, use_bias=False), _bn(nn, bn_momentum), nn.Activation("relu"))
    channels, size = stem, min(input_shape[1:])
    for width in filters:
        net.add(
            nn.Conv2D(channels, 3, padding=1, groups=channels, use_bias=False),
            _bn(nn, bn_momentum),
            nn.Activation("relu"),
        )
        net.add(nn.Conv2D(width, 1, use_bias=False), _bn(nn, bn_momentum), nn.Activation("relu"))
        if size >= 2:
            net.add(nn.MaxPool2D(2))
            size //= 2
        channels = width
    net.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dropout(dropout), nn.Dense(num_classes))
    return net


def _bn(nn: Any, bn_momentum: float) -> Any:
    return nn.BatchNorm(axis=1, momentum=bn_momentum, epsilon=1e-3)  # Keras's epsilon
