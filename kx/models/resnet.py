"""A small residual network for small images, the same architecture in Keras and in Gluon.

A 3x3 conv stem, then per stage ``blocks`` residual blocks (conv-BN-ReLU-conv-BN plus the shortcut,
ReLU); each stage after the first halves the resolution with a stride-2 block and a 1x1 projection.
Global average pooling, dropout and a dense softmax layer (logits for Gluon) end it.
"""

from typing import Any, List, Sequence, Tuple

from kx._compat import import_mxnet


def keras_net(
    input_shape: Tuple[int, ...],
    num_classes: int,
    filters: Sequence[int] = (32, 64),
    blocks: int = 1,
    dropout: float = 0.2,
    bn_momentum: float = 0.9,
) -> Any:
    import keras
    from keras import layers

    from kx.models import fused_batch_norm, keras_head

    axis = keras_head.channel_axis()
    inputs = keras.Input(shape=input_shape)
    x = _keras_conv_bn(inputs, filters[0], 1, axis, bn_momentum)
    x = layers.Activation("relu")(x)
    for stage, width in enumerate(filters):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = layers.Activation("relu")(_keras_conv_bn(x, width, stride, axis, bn_momentum))
            y = _keras_conv_bn(y, width, 1, axis, bn_momentum)
            if stride != 1 or shortcut.shape[axis] != width:
                shortcut = fused_batch_norm.layer(axis=axis, momentum=bn_momentum)(
                    layers.Conv2D(width, 1, strides=stride, use_bias=False)(shortcut)
                )
            x = layers.Activation("relu")(layers.Add()([y, shortcut]))
    return keras.Model(inputs, keras_head.pooled_classifier(x, num_classes, dropout), name="resnet")


def _keras_conv_bn(x: Any, width: int, stride: int, axis: int, bn_momentum: float) -> Any:
    from keras import layers

    from kx.models import fused_batch_norm

    x = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False)(x)
    return fused_batch_norm.layer(axis=axis, momentum=bn_momentum)(x)


def gluon_net(
    input_shape: Tuple[int, ...],
    num_classes: int,
    filters: Sequence[int] = (32, 64),
    blocks: int = 1,
    dropout: float = 0.2,
    bn_momentum: float = 0.9,
) -> Any:
    nn = import_mxnet().gluon.nn
    net = nn.HybridSequential()
    net.add(*_gluon_conv_bn(nn, filters[0], 1, bn_momentum), nn.Activation("relu"))
    channels = filters[0]
    for stage, width in enumerate(filters):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            net.add(_gluon_block(nn, width, stride, stride != 1 or channels != width, bn_momentum))
            channels = width
    net.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dropout(dropout), nn.Dense(num_classes))
    return net


def _gluon_conv_bn(nn: Any, width: int, stride: int, bn_momentum: float) -> List[Any]:
    return [
        nn.Conv2D(width, 3, strides=stride, padding=1, use_bias=False),
        nn.BatchNorm(axis=1, momentum=bn_momentum, epsilon=1e-3),
    ]


def _gluon_block(nn: Any, width: int, stride: int, project: bool, bn_momentum: float) -> Any:
    class Residual(nn.HybridBlock):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.HybridSequential()
            self.body.add(
                *_gluon_conv_bn(nn, width, stride, bn_momentum),
                nn.Activation("relu"),
                *_gluon_conv_bn(nn, width, 1, bn_momentum),
            )
            self.shortcut = None
            if project:
                self.shortcut = nn.HybridSequential()
                self.shortcut.add(
                    nn.Conv2D(width, 1, strides=stride, use_bias=False),
                    nn.BatchNorm(axis=1, momentum=bn_momentum, epsilon=1e-3),
                )

        def hybrid_forward(self, F: Any, x: Any) -> Any:
            shortcut = self.shortcut(x) if self.shortcut is not None else x
            return F.relu(self.body(x) + shortcut)

    return Residual()
