"""kx's batch norm on TensorFlow's fused kernel computes what Keras's layer computes: outputs,
gradients and moving statistics, in float32 and under bfloat16, in both layouts; exported models
carry Keras's own layer and load in plain Keras."""

import pytest

from tests.helpers.keras_export import round_trip
from tests.helpers.processes import run_script

COMPARE = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np
import tensorflow as tf
from kx.models import fused_batch_norm

def run(layer, x, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        weights = np.random.RandomState(3).normal(size=y.shape).astype("float32")  # every position counts
        loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    return [np.asarray(tf.cast(t, "float32")) for t in [y] + grads + [layer.moving_mean, layer.moving_variance]]

def gap(policy, axis, training, center=True, scale=True):
    keras.mixed_precision.set_global_policy(policy)
    x = tf.constant(np.random.RandomState(0).normal(2.0, 3.0, (16, 6, 6, 5)).astype("float32"))
    if axis == 1:
        x = tf.transpose(x, [0, 3, 1, 2])
    x = tf.cast(x, keras.mixed_precision.global_policy().compute_dtype)
    made = []
    for cls in (keras.layers.BatchNormalization, fused_batch_norm.FusedBatchNormalization):
        layer = cls(axis=axis, momentum=0.9, center=center, scale=scale)
        layer.build(x.shape)
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.5, "float32"))
        layer.moving_variance.assign(np.full(layer.moving_variance.shape, 4.0, "float32"))
        made.append(run(layer, x, training))
    return max(float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(a)))) for a, b in zip(*made))

cases = [(p, a, t) for p in ("float32", "mixed_bfloat16") for a in (-1, 1) for t in (True, False)]
gaps = {f"{p} axis={a} training={t}": gap(p, a, t) for p, a, t in cases}
gaps["float32 no center, no scale"] = gap("float32", -1, True, center=False, scale=False)
keras.mixed_precision.set_global_policy("float32")
seq = np.random.RandomState(1).rand(4, 7, 3).astype("float32")  # 3-D: Keras's own arithmetic
plain, fused = keras.layers.BatchNormalization(), fused_batch_norm.FusedBatchNormalization()
gaps["3-D input (Keras's path)"] = float(np.max(np.abs(plain(seq, training=True) - fused(seq, training=True))))

print(json.dumps({"gaps": gaps}))
"""


@pytest.mark.slow
def test_fused_batch_norm_matches_keras_and_exports_plain_keras(tmp_path):
    found = run_script(COMPARE)
    for case, gap in found["gaps"].items():
        # relative to each tensor's largest value; bfloat16 outputs round to 8 bits of mantissa
        assert gap < (1e-2 if "bfloat16" in case else 1e-5), (case, gap)
    layers = "[keras.layers.Conv2D(3, 3), fused_batch_norm.layer(momentum=0.5)]"
    trained, plain = round_trip(tmp_path, (6, 6, 2), layers)
    assert trained["layers"][1] == "FusedBatchNormalization" and trained["resumed_gap"] < 1e-6
    assert not plain["kx_imported"] and plain["layers"][1] == "BatchNormalization"
    assert plain["gap"] < 1e-6
