"""kx's Winograd convolution computes what Keras's Conv2D computes, within float32's rounding: the
output and the gradients of the input, kernel and bias; kx picks it only where it applies, and a
model with it trains, resumes from its checkpoint and exports Keras's own Conv2D. The scripts run
with oneDNN capped to AVX2, as on a CPU without AVX-512, where kx uses it."""

import json

import pytest

from tests.helpers.keras_export import plain_load, round_trip
from tests.helpers.processes import run_script

pytestmark = pytest.mark.slow

COMPARE = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np
import tensorflow as tf
from kx.models import winograd

used = []
convolve = winograd.convolve
winograd.convolve = lambda *args: used.append(args[3].out) or convolve(*args)

def run(cls, dtype, height, width, channels, filters, padding, _):
    x = tf.constant(np.random.RandomState(0).normal(size=(8, height, width, channels)), dtype)
    layer = cls(filters, 3, padding=padding, dtype=dtype)
    layer.build(x.shape)
    state = np.random.RandomState(1)
    layer.set_weights([state.normal(size=v.shape).astype(v.dtype) for v in layer.weights])
    del used[:]
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        upstream = np.random.RandomState(2).normal(0.3, 1.0, size=y.shape)
        loss = tf.reduce_sum(tf.cast(y, "float64") * upstream)
    found = [y, *tape.gradient(loss, [x, *layer.trainable_weights])]
    return used[0] if used else None, [np.asarray(tf.cast(t, "float64")) for t in found]

def gap(found, truth):  # each tensor's, relative to its largest value
    return [float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(found, truth)]

result = {}
for case in json.loads(sys.argv[1]):
    _, truth = run(keras.layers.Conv2D, "float64", *case)
    _, keras_f32 = run(keras.layers.Conv2D, "float32", *case)
    used_f32, ours = run(winograd.WinogradConv2D, "float32", *case)
    result[str(case)] = {"used": used_f32, "gap": gap(ours, truth), "keras_gap": gap(keras_f32, truth)}
print(json.dumps(result))
"""

CHOICES = """
import json, os
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
from kx import cpu
from kx.models import winograd

def kind(policy, channels, **conv):
    keras.mixed_precision.set_global_policy(policy)
    return type(winograd.layer({"filters": 64, "kernel_size": 3, **conv}, channels)).__name__

print(json.dumps({
    "float32 64": kind("float32", 64), "float32 32": kind("float32", 32), "float32 31": kind("float32", 31),
    "63 filters": kind("float32", 64, filters=63),
    "bfloat16 64": kind("mixed_bfloat16", 64), "float16 64": kind("mixed_float16", 64),
    "strides 2": kind("float32", 64, strides=2), "dilation 2": kind("float32", 64, dilation_rate=2),
    "5x5": kind("float32", 64, kernel_size=5), "3x1": kind("float32", 64, kernel_size=(3, 1)),
    "channels_first": kind("float32", 64, data_format="channels_first"),
    "avx512": (setattr(winograd, "probe", lambda: cpu.Cpu("AVX-512", frozenset({"avx512f"}))), kind("float32", 64))[1],
}))
"""

KX_TRAINS = """
import json, sys
from kx.backends import EpochMonitor
from kx.backends.checkpoint import Checkpoint
from kx.pipeline import prepare
from kx.run_config import compose
from kx.serving import loaders

overrides = ["backend.precision=float32", "dataset.limit=1024", "train.epochs=2", "train.early_stopping.enabled=false"]
cfg, backend, data = prepare(compose(overrides))
from kx.models import winograd  # imported with the backend: KERAS_BACKEND is set

calls = []
convolve = winograd.convolve
winograd.convolve = lambda *args: calls.append(args[3].out) or convolve(*args)
backend.fit(data, cfg.train, EpochMonitor(patience=None), Checkpoint(None))
trained = backend.predict(data.x_val)
backend.export(__import__("pathlib").Path(sys.argv[1]), "model", 1)
served = loaders.saved_model(__import__("pathlib").Path(sys.argv[1]) / "model" / "1")(data.x_val)
__import__("numpy").save(sys.argv[1] + "/probe.npy", data.x_val[:64])
__import__("numpy").save(sys.argv[1] + "/expected.npy", trained[:64])
print(json.dumps({"layers": [type(layer).__name__ for layer in backend.model.layers], "blocks": sorted(set(calls)),
                  "gap": float(abs(trained - served).max())}))
"""

OTHER_ENGINE = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "jax"
import keras
from kx.models import winograd

made = winograd.layer({"filters": 64, "kernel_size": 3}, 64)
print(json.dumps({"layer": type(made).__name__, "tensorflow": "tensorflow" in sys.modules}))
"""

CASES = [  # height, width, input channels, filters, padding, the blocks Winograd computes (None: Keras)
    [14, 14, 64, 128, "valid", 6],  # the reference CNN's second convolution: 12x12, two blocks of 6
    [12, 18, 32, 64, "same", 6],
    [8, 8, 32, 64, "valid", 6],  # one block of 6
    [8, 12, 32, 64, "same", 4],  # 8 is not whole blocks of 6
    [6, 6, 32, 64, "valid", 4],  # one block of 4
    [7, 9, 32, 64, "same", None],  # not whole blocks: Keras's convolution
    [8, 10, 32, 64, "valid", None],  # 6x8: each side whole blocks of a different size
]
FLOAT32 = 3e-5  # float32's rounding over a batch, relative
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_winograd_computes_what_keras_conv2d_computes():
    found = run_script(COMPARE, json.dumps(CASES), env=AVX2)
    for case in CASES:
        result = found[str(case)]
        assert result["used"] == case[-1], (case, result)
        # the output and the gradients of the input, the kernel and the bias, each within float32's
        # rounding of the exact one (float64) or as close as Keras's own convolution comes
        pairs = zip(result["gap"], result["keras_gap"])
        assert all(ours <= max(FLOAT32, keras) for ours, keras in pairs), (case, result)


def test_kx_computes_by_winograd_only_where_it_applies():
    found = run_script(CHOICES, env=AVX2)
    assert found.pop("float32 64") == found.pop("float32 32") == "WinogradConv2D"
    assert set(found.values()) == {"Conv2D"}, found


def test_a_model_with_winograd_trains_resumes_and_exports_keras_conv2d(tmp_path):
    layers = '[winograd.layer({"filters": 64, "kernel_size": 3, "padding": "same"}, 32), keras.layers.ReLU()]'
    found, plain = round_trip(tmp_path, (8, 8, 32), layers, env=AVX2)
    assert found["loss"][-1] < found["loss"][0]
    assert found["layers"][0] == "WinogradConv2D" and found["resumed_gap"] < 1e-6
    assert not plain["kx_imported"]
    assert plain["layers"][0] == "Conv2D"
    assert plain["gap"] < 1e-4  # a direct convolution of the same weights: rounding apart


def test_kx_trains_the_cnn_by_winograd_in_float32_and_serves_keras_conv2d(tmp_path):
    """Fashion-MNIST's 28x28 images: the second convolution gets 14x14 maps, a 12x12 output of whole
    6x6 blocks."""
    found = run_script(KX_TRAINS, str(tmp_path), env=AVX2)
    assert "WinogradConv2D" in found["layers"] and found["blocks"] == [6]
    assert found["gap"] < 1e-4  # the SavedModel runs Keras's Conv2D: rounding apart
    plain = plain_load(tmp_path, "model.keras")  # the .keras file, in plain Keras
    assert not plain["kx_imported"] and "Conv2D" in plain["layers"] and plain["gap"] < 1e-4


def test_another_engine_gets_keras_conv2d_without_importing_tensorflow():
    found = run_script(OTHER_ENGINE, env=AVX2)
    assert found == {"layer": "Conv2D", "tensorflow": False}
