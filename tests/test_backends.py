"""Every installed backend trains the same configs, reproducibly, and its export reloads."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import PROJECT_DIR
from tests.helpers.processes import run_script

pytestmark = pytest.mark.slow

ENGINES = {"tensorflow": "tensorflow", "mxnet": "mxnet", "jax": "jax", "torch": "torch"}
EXPORTS = {
    "tensorflow": ["model.keras", "model/1"],
    "jax": ["model.keras", "model/1"],
    "torch": ["model.keras"],
    "mxnet": ["model-0000.params", "model-shapes.json", "model-symbol.json"],
}


def check(backend: str, out_dir, *overrides: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "tests" / "backend_check.py"), backend, str(out_dir), *overrides],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_DIR,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(params=list(ENGINES), scope="module")
def backend(request):
    if importlib.util.find_spec(ENGINES[request.param]) is None:
        pytest.skip(f"{request.param} is not installed (pip install -e .[{request.param}])")
    return request.param


@pytest.fixture(scope="module")
def cnn_run(backend, tmp_path_factory):
    return check(backend, tmp_path_factory.mktemp(backend))


def test_cnn_learns_digits_well_above_chance(cnn_run):
    assert cnn_run["best_val_acc"] > 0.8  # 10 classes: chance is 0.1
    assert len(cnn_run["history"]["val_acc"]) == 6


def test_layout_is_the_backends_choice(backend, cnn_run):
    expected = [8, 8, 1] if backend == "tensorflow" else [1, 8, 8]
    assert cnn_run["input_shape"] == expected


def test_export_reloads_and_predicts_the_same_classes(backend, cnn_run):
    assert cnn_run["reloaded_classes"] == cnn_run["trained_classes"]
    assert cnn_run["max_prob_diff"] < 1e-4
    assert cnn_run["files"] == EXPORTS[backend]
    # the kept weights are the best epoch's
    accuracy = np.mean(np.array(cnn_run["trained_classes"]) == np.array(cnn_run["labels"]))
    assert accuracy == pytest.approx(cnn_run["best_val_acc"], abs=1e-6)


def test_same_seed_same_history(backend, cnn_run, tmp_path):
    assert check(backend, tmp_path)["history"] == cnn_run["history"]


def test_several_steps_per_call_train_the_same_model(backend, cnn_run, tmp_path):
    """On tensorflow auto runs several steps per call into the compiled step: the same updates, so
    the same history as one step per call."""
    if backend != "tensorflow":
        pytest.skip("several steps per call are auto on tensorflow only")
    assert check(backend, tmp_path, "backend.steps_per_execution=1")["history"] == cnn_run["history"]


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_other_optimizers_train_the_mlp(backend, optimizer, tmp_path):
    run = check(backend, tmp_path, "model=mlp", f"train.optimizer={optimizer}", "train.learning_rate=0.001")
    assert run["best_val_acc"] > 0.8


def test_numpy_aliases_are_restored_for_mxnet_only(backend, cnn_run):
    from kx._compat import NUMPY_ALIASES

    assert cnn_run["numpy_aliases"] == (list(NUMPY_ALIASES) if backend == "mxnet" else [])


BLOCK_MXNET = """
import runpy, sys
class NoMXNet:
    def find_spec(self, name, path=None, target=None):
        if name == "mxnet":
            raise ImportError("No module named 'mxnet'")
sys.meta_path.insert(0, NoMXNet())
sys.argv = ["train.py", "backend=mxnet", "dataset=digits", "tracking.enabled=false", "hydra.run.dir=run"]
runpy.run_path({train!r}, run_name="__main__")
"""


def test_missing_mxnet_names_the_install_command(tmp_path):
    script = BLOCK_MXNET.format(train=str(PROJECT_DIR / "train.py"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "backend=mxnet needs Apache MXNet 1.9.1, which is not installed" in proc.stderr
    assert 'pip install -e ".[mxnet]"' in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("model", ["resnet", "separable"])
def test_builtin_architectures_learn_digits_and_export_on_every_backend(backend, model, tmp_path):
    run = check(backend, tmp_path, f"model={model}", "train.epochs=3")
    assert run["best_val_acc"] > 0.9
    assert run["reloaded_classes"] == run["trained_classes"] and run["files"] == EXPORTS[backend]


POOL_ORDER = """
import json, os
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np
import tensorflow as tf
from kx.backends import create_backend
from kx.run_config import compose

backend = create_backend(compose(["backend=tensorflow", "backend.precision=float32"]).backend)
backend.prepare(0, False)
backend.build(compose([]).model, (28, 28, 1), 10)
built = backend.model
swapped = []  # ReLU back before each pooling, as the reference network has them
for layer in built.layers:
    if isinstance(layer, keras.layers.Activation) and swapped and isinstance(swapped[-1], keras.layers.MaxPooling2D):
        swapped.insert(-1, layer)
    else:
        swapped.append(layer)
reference = keras.Sequential([keras.Input((28, 28, 1)), *[type(l).from_config(l.get_config()) for l in swapped]])
reference.set_weights(built.get_weights())
x = tf.constant(np.random.RandomState(0).rand(64, 28, 28, 1).astype("float32"))

def run(model):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=False) * np.arange(10))
    return [model(x, training=False), *tape.gradient(loss, model.trainable_weights)]

print(json.dumps({"order": [type(l).__name__ for l in built.layers],
                  "gaps": [float(np.max(np.abs(a - b))) for a, b in zip(run(built), run(reference))]}))
"""


def test_the_cnn_pools_before_relu_and_computes_what_relu_then_pooling_computes():
    """kx's CNN max-pools before its ReLU (cheaper: ReLU runs on a quarter of the values); the two
    commute, so its outputs and gradients are those of the reference's order, exactly."""
    found = run_script(POOL_ORDER)
    pairs = list(zip(found["order"], found["order"][1:]))
    assert ("MaxPooling2D", "Activation") in pairs and ("Activation", "MaxPooling2D") not in pairs
    assert found["gaps"] and max(found["gaps"]) == 0.0, found["gaps"]
