"""An example of your own network for kx (README "Bring your own model"):

python train.py model=custom model.builder=examples.mynets:build 'model.kwargs={width:128}' dataset=digits
"""


def build(input_shape, num_classes, width=64):
    """A Keras model ending in a softmax, for backend=tensorflow, jax or torch."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


def build_gluon(input_shape, num_classes, width=64):
    """The same network for backend=mxnet: a Gluon HybridBlock that returns logits."""
    from kx.backends.gluon import import_mxnet

    nn = import_mxnet().gluon.nn
    net = nn.HybridSequential()
    net.add(
        nn.Conv2D(32, 3, activation="relu", padding=1),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dense(width, activation="relu"),
        nn.Dense(num_classes),
    )
    return net
