"""kx's batch norm on TensorFlow's fused kernel computes what Keras's layer computes: outputs,
gradients and moving statistics, in float32 and under bfloat16, in both layouts; exported models
carry Keras's own layer and load in plain Keras."""

import pytest

from tests.helpers.processes import run_script

COMPARE = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np
import tensorflow as tf
from kx.models import conv_batch_norm, fused_batch_norm

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

model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3),
                          fused_batch_norm.layer(momentum=0.5), keras.layers.Flatten(), keras.layers.Dense(2)])
model.compile(optimizer="sgd", loss="mse")
model.fit(np.random.rand(32, 6, 6, 2), np.random.rand(32, 2), verbose=0)
model.save(sys.argv[1] + "/checkpoint.keras")
conv_batch_norm.portable(model).save(sys.argv[1] + "/export.keras")
probe = np.random.RandomState(2).rand(5, 6, 6, 2).astype("float32")
np.save(sys.argv[1] + "/probe.npy", probe)
np.save(sys.argv[1] + "/expected.npy", model.predict(probe, verbose=0))
resumed = keras.saving.load_model(sys.argv[1] + "/checkpoint.keras")
print(json.dumps({"gaps": gaps, "layer": type(model.layers[1]).__name__,
                  "resumed": [type(layer).__name__ for layer in resumed.layers],
                  "resumed_gap": float(np.max(np.abs(resumed.predict(probe, verbose=0) - np.load(sys.argv[1] + "/expected.npy"))))}))
"""

PLAIN_LOAD = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np
model = keras.saving.load_model(sys.argv[1] + "/export.keras")
got = model.predict(np.load(sys.argv[1] + "/probe.npy"), verbose=0)
print(json.dumps({"layers": [type(layer).__module__ + "." + type(layer).__name__ for layer in model.layers],
                  "gap": float(np.max(np.abs(got - np.load(sys.argv[1] + "/expected.npy")))),
                  "kx_imported": any(name.startswith("kx") for name in sys.modules)}))
"""


@pytest.mark.slow
def test_fused_batch_norm_matches_keras_and_exports_plain_keras(tmp_path):
    found = run_script(COMPARE, str(tmp_path))
    for case, gap in found["gaps"].items():
        # relative to each tensor's largest value; bfloat16 outputs round to 8 bits of mantissa
        assert gap < (1e-2 if "bfloat16" in case else 1e-5), (case, gap)
    assert found["layer"] == "FusedBatchNormalization"
    assert found["resumed"][1] == "FusedBatchNormalization" and found["resumed_gap"] < 1e-6
    plain = run_script(PLAIN_LOAD, str(tmp_path))
    assert not plain["kx_imported"]
    assert "keras.src.layers.normalization.batch_normalization.BatchNormalization" in plain["layers"]
    assert plain["gap"] < 1e-6
