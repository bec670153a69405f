"""What kx's Keras networks share: the channel axis they normalize over and the classifier they end in.

Import this module only once ``KERAS_BACKEND`` is set: it imports Keras.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

from typing import Any, List

import keras


def channel_axis() -> int:
    """The channel axis of Keras's image layout (``keras.config.image_data_format()``)."""
    return 1 if keras.config.image_data_format() == "channels_first" else -1


def classifier(num_classes: int) -> List[Any]:
    """A dense layer and its softmax, the softmax in float32 under mixed precision too, so that the
    loss and the exported model's probabilities keep float32's precision."""
    return [keras.layers.Dense(num_classes), keras.layers.Activation("softmax", dtype="float32")]


def pooled_classifier(x: Any, num_classes: int, dropout: float) -> Any:
    """Global average pooling, dropout, then :func:`classifier`, applied to the feature map ``x``."""
    x = keras.layers.Dropout(dropout)(keras.layers.GlobalAveragePooling2D()(x))
    for layer in classifier(num_classes):
        x = layer(x)
    return x
