"""kx's convolution with its batch norm folded in computes what Keras's Conv2D then BatchNormalization
compute in training: outputs, gradients and moving statistics, in float32 and under bfloat16; a model
with it trains, resumes from its checkpoint, and exports Keras's own layers that load in plain Keras."""

import json

import pytest

from tests.helpers.keras_export import round_trip
from tests.helpers.processes import run_script

COMPARE = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np
import tensorflow as tf
from kx.models import conv_batch_norm

folds = []
fold = conv_batch_norm.ConvBatchNormalization._folded
conv_batch_norm.ConvBatchNormalization._folded = lambda self, x: folds.append(1) or fold(self, x)

def run(policy, folded, kernel, padding, channels, plain):
    keras.mixed_precision.set_global_policy(policy)
    x = tf.constant(np.random.RandomState(0).rand(32, 10, 10, channels).astype("float32"))
    x = tf.cast(x, "float64") if policy == "float64" else x
    conv = {"filters": 8, "kernel_size": kernel, "padding": padding, "use_bias": not plain}
    norm = {"momentum": 0.9, "center": not plain, "scale": not plain}
    del folds[:]
    if folded:  # in a model, as kx trains it: under the model's autocast scope
        layer = keras.Sequential([keras.Input(x.shape[1:]), conv_batch_norm.ConvBatchNormalization(conv, norm)])
        norm_layer = layer.layers[0].norm
    else:
        layer = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Conv2D(**conv),
                                  keras.layers.BatchNormalization(**norm)])
        norm_layer = layer.layers[1]
    state = np.random.RandomState(1)
    layer.set_weights([state.normal(size=v.shape).astype(v.dtype) for v in layer.weights])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        # every position counts, and the gradient has a mean (as a ReLU's has), which the batch
        # mean's gradient takes out again
        weights = np.random.RandomState(3).normal(0.3, 1.0, size=y.shape)
        loss = tf.reduce_sum(tf.cast(y, "float64") * weights)
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    found = [y] + grads + [norm_layer.moving_mean, norm_layer.moving_variance]
    return bool(folds), [np.asarray(tf.cast(t, "float64")) for t in found]

def gap(found, truth):  # each tensor's
    return [float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b)))) for a, b in zip(found, truth)]

result = {}
for case in json.loads(sys.argv[1]):
    _, truth = run("float64", False, *case)  # Keras's layers, rounding aside
    _, keras_f32 = run("float32", False, *case)
    _, keras_bf16 = run("mixed_bfloat16", False, *case)
    used, folded = run("float32", True, *case)
    used_bf16, folded_bf16 = run("mixed_bfloat16", True, *case)
    result[str(case)] = {"folded": used, "folded_bf16": used_bf16, "gap": gap(folded, truth),
                                       "gap_bf16": gap(folded_bf16, truth), "keras_gap": gap(keras_f32, truth),
        "keras_gap_bf16": gap(keras_bf16, truth)}
print(json.dumps(result))
"""

CHOICES = """
import json, os
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
from kx.models import conv_batch_norm

def kinds(policy, channels, **conv):
    keras.mixed_precision.set_global_policy(policy)
    made = conv_batch_norm.layers({"filters": 4, "kernel_size": 3, **conv}, {}, channels)
    return [type(layer).__name__ for layer in made]

found = {"float32 1": kinds("float32", 1), "float32 3": kinds("float32", 3),
         "bfloat16 1": kinds("mixed_bfloat16", 1), "float16 1": kinds("mixed_float16", 1), "strides 2": kinds("float32", 1, strides=2),
         "relu": kinds("float32", 1, activation="relu")}
keras.mixed_precision.set_global_policy("float32")
inputs = keras.Input((8, 8, 1))
outputs = keras.layers.Dense(2)(keras.layers.Flatten()(conv_batch_norm.layers({"filters": 4, "kernel_size": 3}, {}, 1)[0](inputs)))
functional = keras.Model(inputs, outputs, name="functional")
try:
    conv_batch_norm.portable(functional)
    found["refused"] = None
except ValueError as error:
    found["refused"] = str(error)
print(json.dumps(found))
"""


CASES = [  # kernel size, padding, input channels, no bias / center / scale
    [3, "same", 1, False],
    [3, "valid", 1, False],
    [3, "same", 1, True],
    [2, "same", 2, False],  # an even kernel, padded after only
    [[3, 1], "same", 3, False],
    [3, "same", 3, False],  # a patch past MAX_FOLDED_PATCH: the two sublayers
]
FLOAT32, BFLOAT16 = 3e-5, 1e-2  # each precision's rounding over a batch, relative


@pytest.mark.slow
def test_the_fold_trains_as_keras_conv2d_then_batch_normalization():
    found = run_script(COMPARE, json.dumps(CASES))
    folds = [True] * (len(CASES) - 1) + [False]
    assert [case["folded"] for case in found.values()] == folds, found
    assert [case["folded_bf16"] for case in found.values()] == folds, found
    for name, case in found.items():
        # each tensor (the output, the gradients of the input and the weights, the moving
        # statistics) within its precision's rounding of the exact one (float64), or as close as
        # Keras's own layers come, relative to its largest value
        for precision, floor in (("", FLOAT32), ("_bf16", BFLOAT16)):
            pairs = zip(case["gap" + precision], case["keras_gap" + precision])
            assert all(ours <= max(floor, keras) for ours, keras in pairs), (name, precision, case)


@pytest.mark.slow
def test_a_model_with_the_fold_trains_resumes_and_exports_plain_keras(tmp_path):
    layers = 'conv_batch_norm.layers({"filters": 4, "kernel_size": 3}, {"momentum": 0.5}, 1)'
    found, plain = round_trip(tmp_path, (8, 8, 1), layers)
    assert found["loss"][-1] < found["loss"][0]
    assert found["layers"][0] == "ConvBatchNormalization" and found["resumed_gap"] < 1e-6
    assert not plain["kx_imported"]
    assert plain["layers"][:2] == ["Conv2D", "BatchNormalization"]
    assert plain["gap"] < 1e-6


@pytest.mark.slow
def test_kx_folds_only_where_it_measured_a_gain_and_exports_only_from_a_sequential():
    found = run_script(CHOICES)
    folded, two = ["ConvBatchNormalization"], ["Conv2D", "FusedBatchNormalization"]
    assert found["float32 1"] == found["bfloat16 1"] == folded
    for case in ("float32 3", "float16 1", "strides 2", "relu"):
        assert found[case] == two, (case, found)
    assert found["refused"] == (
        "model 'functional' has a ConvBatchNormalization outside a keras.Sequential's own layers; it exports "
        "only there (kx.models.conv_batch_norm.layers); use keras.layers.Conv2D and BatchNormalization elsewhere"
    )
