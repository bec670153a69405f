"""train.ema: validation, the best epoch, the export and a resumed run see the weights' moving
average; training goes on from the weights it reached."""

import importlib.util
import json
import subprocess
import sys

import pytest

from kx.backends import optim
from kx.backends.bn_momentum import auto_momentum
from kx.config import ConfigError
from kx.run_config import validate

KERAS_ENGINES = ["tensorflow", "jax", "torch"]

RESUME = r"""
import json, sys
import numpy as np
from kx.backends import EpochMonitor, create_backend, keras_optim
from kx.backends.checkpoint import Checkpoint
from kx.config import objective
from kx.data.loading import load_dataset
from kx.run_config import compose, validate

engine, folder, *overrides = sys.argv[1:]
cfg = compose([f"backend={engine}", "dataset=digits", "train.epochs=3", "train.batch_size=16", *overrides])
validate(cfg)

def engine_for(cfg):
    backend = create_backend(cfg.backend)
    backend.prepare(cfg.train.seed, cfg.train.deterministic)
    return backend

backend = engine_for(cfg)
data = load_dataset(cfg.dataset, backend.image_layout, cfg.train.seed)
backend.build(cfg.model, data.input_shape, data.num_classes)
monitor = EpochMonitor(objective(cfg), patience=5)
backend.fit(data, cfg.train, monitor, Checkpoint(folder))
accuracy = lambda b: float(np.mean(b.predict(data.x_val).argmax(1) == data.y_val))
kept = accuracy(backend)

resumed, resumed_monitor = engine_for(cfg), EpochMonitor(objective(cfg), patience=5)
resumed.build(cfg.model, data.input_shape, data.num_classes)
Checkpoint(folder).restore(resumed, resumed_monitor)
reached = [np.array(v) for v in resumed.model.get_weights()]
with keras_optim.averaged(resumed.model):
    averaged = accuracy(resumed)
    gap = max(float(np.abs(a - b).max()) for a, b in zip(resumed.model.get_weights(), reached))
back = max(float(np.abs(a - b).max()) for a, b in zip(resumed.model.get_weights(), reached))
print(json.dumps({"history": monitor.history, "best": monitor.best()["val_acc"], "kept": kept,
                  "resumed_averaged": averaged, "average_gap": gap, "back_gap": back}))
"""


def _run(engine: str, folder: str, *overrides: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", RESUME, engine, folder, *overrides],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_average_follows_the_batch_norm_statistics_span(compose_cfg):
    steps = 235  # Fashion-MNIST's 60,000 images at the default batch of 256
    default = compose_cfg().train
    assert optim.spec(default, steps, True).ema == auto_momentum(default.epochs * steps) == 0.9894
    assert optim.spec(compose_cfg("train.ema_momentum=0.995").train, steps, True).ema == 0.995
    assert optim.spec(compose_cfg("train.ema=off").train, steps, True).ema is None


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["backend=mxnet", "train.ema=on"],
            "train.ema=on is not supported by backend=mxnet: it keeps no moving average of the weights; use off, or auto (on where the engine keeps one).",
        ),
        (
            ["train.ema_momentum=1"],
            "Invalid config value train.ema_momentum=1.0: expected a number in (0, 1), or null for the automatic choice.",
        ),
    ],
)
def test_bad_average_settings_are_one_line_before_any_framework_loads(check_train, args, message):
    proc = check_train(*args)
    assert (proc.returncode, proc.stderr) == (2, f"kx: error: {message}\n")


def test_auto_averages_on_the_keras_engines_only(compose_cfg):
    train = compose_cfg().train
    assert optim.spec(train, 235, averages_weights=False).ema is None  # mxnet: validated, trained raw
    validate(compose_cfg("backend=mxnet"))  # auto is off there; on is refused (above)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.ema_momentum=0"], r"train.ema_momentum=0.0: expected a number in \(0, 1\)"),
        (["train.ema_momentum=1.5"], r"train.ema_momentum=1.5: expected a number in \(0, 1\)"),
        (
            ["train.ema=off", "train.ema_momentum=0.995"],
            r"^train.ema_momentum=0.995 has no effect: backend=tensorflow with train.ema=off keeps no",
        ),
        (
            ["backend=mxnet", "train.ema_momentum=0.995"],
            r"^train.ema_momentum=0.995 has no effect: backend=mxnet with train.ema=auto keeps no",
        ),
    ],
)
def test_a_momentum_out_of_range_or_without_an_average_is_refused(compose_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_cfg(*overrides))


@pytest.mark.slow
@pytest.mark.parametrize("engine", KERAS_ENGINES)
def test_validation_the_kept_model_and_a_resume_use_the_average(engine, tmp_path):
    if importlib.util.find_spec(engine) is None:
        pytest.skip(f"{engine} is not installed")
    found = _run(engine, str(tmp_path / "on"))
    plain = _run(engine, str(tmp_path / "off"), "train.ema=off")
    # the average changes what is validated, not how the model trains
    assert found["history"]["loss"] == plain["history"]["loss"]
    assert found["history"]["acc"] == plain["history"]["acc"]
    assert found["history"]["val_acc"] != plain["history"]["val_acc"]
    # the model a run keeps (and exports) is the best epoch's average, as validated
    assert found["kept"] == pytest.approx(found["best"], abs=1e-6)
    # a checkpoint carries the average: the resumed run validates what the stopped one did last,
    # and trains on from the weights it reached
    assert found["resumed_averaged"] == pytest.approx(found["history"]["val_acc"][-1], abs=1e-6)
    assert found["average_gap"] > 1e-4 and found["back_gap"] == 0.0
