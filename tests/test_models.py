"""Bring your own model: a builder defined here trains through train.py on every backend; builders
that cannot be used are one clear line."""

import importlib.util

import pytest

pytestmark = pytest.mark.slow

QUICK = [
    "dataset=digits",
    "train.epochs=3",
    "train.batch_size=32",
    "tracking.enabled=false",
    "hydra.run.dir=run",
]


def keras_builder(input_shape, num_classes, width=32):
    """A user's Keras network: flatten, one hidden layer, softmax."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="mine",
    )


def gluon_builder(input_shape, num_classes, width=32):
    """The same network for backend=mxnet, as a Gluon block giving logits."""
    from kx._compat import import_mxnet

    nn = import_mxnet().gluon.nn
    net = nn.HybridSequential()
    net.add(nn.Flatten(), nn.Dense(width, activation="relu"), nn.Dense(num_classes))
    return net


def failing_builder(input_shape, num_classes):
    raise ValueError("width must be even")


def wrong_builder(input_shape, num_classes):
    return "a string"


def wrong_outputs(input_shape, num_classes):
    return keras_builder(input_shape, num_classes + 1)


def misplaced_fold(input_shape, num_classes):
    """kx's folded convolution in a functional model, which kx's exports cannot expand."""
    import keras

    from kx.models.conv_batch_norm import ConvBatchNormalization

    inputs = keras.Input(shape=input_shape)
    maps = ConvBatchNormalization({"filters": 4, "kernel_size": 3}, {})(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(keras.layers.Flatten()(maps))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch", "mxnet"])
def test_a_builder_from_a_test_module_trains_on_every_backend(run_train, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    proc = run_train(
        f"backend={backend}",
        "model=custom",
        "model.builder=tests.test_models:keras_builder",
        "model.gluon_builder=tests.test_models:gluon_builder",
        "model.kwargs={width:48}",
        *QUICK,
    )
    best = float(proc.stdout.rsplit("best_val_acc=", 1)[1].split()[0])
    assert best > 0.85


@pytest.mark.parametrize(
    "builder, message",
    [
        ("tests.nowhere:build", "model.builder='tests.nowhere:build': cannot import tests.nowhere"),
        (
            "tests.test_models:nothing",
            "model.builder='tests.test_models:nothing': tests.test_models has no function nothing",
        ),
        (
            "tests.test_models:failing_builder",
            "model.builder='tests.test_models:failing_builder' raised ValueError: width must be even",
        ),
        (
            "tests.test_models:wrong_builder",
            "model.builder='tests.test_models:wrong_builder' returned str, not a keras.Model",
        ),
        (
            "tests.test_models:wrong_outputs",
            "built a model whose output shape is (None, 11); expected (None, 10)",
        ),
        (
            "tests.test_models:misplaced_fold",
            "built a model that has a ConvBatchNormalization outside a keras.Sequential's own layers",
        ),
    ],
)
def test_unusable_builders_are_one_line(run_train, builder, message):
    proc = run_train("model=custom", f"model.builder={builder}", *QUICK, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # (TensorFlow's own start-up chatter may come first)
    assert last.startswith("kx: error: ") and message in last and proc.stderr.count("kx: error") == 1


def test_mxnet_needs_a_gluon_builder(run_train):
    if importlib.util.find_spec("mxnet") is None:
        pytest.skip("mxnet is not installed")
    proc = run_train(
        "backend=mxnet", "model=custom", "model.builder=tests.test_models:keras_builder", *QUICK, check=False
    )
    assert proc.returncode == 2
    assert "model=custom names no model.gluon_builder, which this backend needs." in proc.stderr
