"""The speed levers: one learning-rate schedule for every engine, the precision choice, the
time-to-accuracy benchmark's quick mode."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from kx import cpu
from kx.backends import keras_steps, optim, precision
from kx.backends.gluon import GluonSchedule
from kx.errors import KxError
from tests.conftest import PROJECT_DIR

TRAIN = {
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "schedule": "cosine",
    "warmup_epochs": 0.5,
    "epochs": 4,
}


def spec(**changes) -> optim.OptimizerSpec:
    return optim.spec(OmegaConf.create({**TRAIN, **changes}), steps_per_epoch=100, averages_weights=False)


def test_warmup_then_cosine_decay_to_zero():
    s = spec()
    assert (s.warmup_steps, s.total_steps) == (50, 400)
    rates = [optim.rate(s, step) for step in range(400)]
    assert rates[0] == 0.0 and rates[25] == pytest.approx(0.05) and rates[50] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(rates[:50], rates[1:51]))  # rising warm-up
    assert all(a >= b for a, b in zip(rates[50:], rates[51:]))  # then never rising
    assert rates[225] == pytest.approx(0.05)  # half-way through the decay: half the peak
    assert optim.rate(s, 400) == pytest.approx(0.0, abs=1e-12) and optim.rate(s, 900) == pytest.approx(
        0.0, abs=1e-12
    )


def test_constant_schedule_without_warmup_is_the_plain_rate():
    s = spec(schedule="constant", warmup_epochs=0)
    assert {optim.rate(s, step) for step in (0, 17, 399, 5000)} == {0.1}


def test_gluon_schedule_counts_updates_from_one():
    s = spec()
    assert [GluonSchedule(s)(n) for n in (1, 50, 226)] == [optim.rate(s, n - 1) for n in (1, 50, 226)]


STEPS = [0, 1, 25, 49, 50, 51, 120, 225, 399, 400, 500]
SPECS = [{}, {"schedule": "constant"}, {"warmup_epochs": 0}, {"schedule": "constant", "warmup_epochs": 0}]


@pytest.mark.slow
def test_keras_runs_the_same_schedule_and_its_saved_optimizer_loads_in_plain_keras(tmp_path):
    """Keras's CosineDecay, set from the spec, gives optim.rate's rates; a trained model's file (with
    its optimizer at step 225) loads back with the same rate, with nothing of kx registered."""
    code = f"""
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np
from omegaconf import OmegaConf
from kx.backends import keras_optim, optim
specs = [optim.spec(OmegaConf.create({{**{TRAIN!r}, **c}}), steps_per_epoch=100, averages_weights=False) for c in {SPECS!r}]
rates = [[float(keras_optim.schedule(keras, s)(step)) for step in {STEPS!r}] for s in specs]
opt = keras_optim.optimizer(keras, specs[0])
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
model.compile(optimizer=opt, loss="mse")
model.fit(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0)  # builds the optimizer, whose state is saved
opt.iterations.assign(225)
model.save(sys.argv[1])
print(json.dumps([rates, float(keras.saving.load_model(sys.argv[1]).optimizer.learning_rate)]))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m.keras")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    rates, reloaded = json.loads(proc.stdout.strip().splitlines()[-1])
    for changes, keras_rates in zip(SPECS, rates):
        assert keras_rates == pytest.approx([optim.rate(spec(**changes), n) for n in STEPS], abs=1e-6), (
            changes
        )
    assert reloaded == pytest.approx(optim.rate(spec(), 225), rel=1e-5)


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / f"cpuinfo-{abs(hash(flags))}"
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 {flags}\n\n")
    return path


def test_cpu_probe_reads_the_flags_and_the_onednn_cap(tmp_path):
    """bfloat16 is native with avx512_bf16 or amx_bf16, and AVX-512 with avx512f, unless
    ONEDNN_MAX_CPU_ISA caps oneDNN below it (as on a CPU without it); the report names the model and
    the flags that decide speed."""
    bf16 = cpuinfo(tmp_path, "avx2 avx512f avx512_bf16")
    assert cpu.probe(bf16, isa_cap="").native_bf16
    assert cpu.probe(cpuinfo(tmp_path, "avx2 amx_tile amx_bf16"), isa_cap="").native_bf16
    assert not cpu.probe(cpuinfo(tmp_path, "avx2 fma"), isa_cap="").native_bf16
    assert not cpu.probe(tmp_path / "missing", isa_cap="").native_bf16
    assert not cpu.probe(bf16, isa_cap="AVX2").native_bf16
    assert cpu.probe(bf16, isa_cap="avx512_core_amx").native_bf16
    assert cpu.probe(bf16, isa_cap="").avx512 and cpu.probe(bf16, isa_cap="AVX512_CORE").avx512
    assert not cpu.probe(bf16, isa_cap="AVX2").avx512
    assert not cpu.probe(cpuinfo(tmp_path, "avx2 fma"), isa_cap="").avx512
    described = cpu.probe(bf16, isa_cap="AVX2").describe()
    assert described.startswith("Some CPU x ")
    assert "(avx2 avx512f avx512_bf16; ONEDNN_MAX_CPU_ISA=AVX2; no native bfloat16)" in described


def test_auto_steps_per_call_are_several_on_tensorflow_on_one_device_only():
    per_call = keras_steps.per_call
    assert per_call(None, "tensorflow", distributed=False, keras_version="3.15.1") == keras_steps.AUTO_STEPS
    assert keras_steps.AUTO_STEPS > 1
    assert per_call(None, "tensorflow", distributed=True, keras_version="3.15.1") == 1
    assert per_call(None, "torch", False, "3.15.1") == per_call(None, "jax", False, "3.15.1") == 1
    assert per_call(3, "jax", distributed=False, keras_version="3.15.1") == 3


def test_keras_releases_that_lose_a_partial_calls_results_run_one_step_per_call():
    # Keras 3.6 (TensorFlow 2.19's image): a validation pass shorter than a call reported no val_acc
    assert keras_steps.per_call(None, "tensorflow", False, "3.6.0") == 1
    assert keras_steps.per_call(1, "tensorflow", False, "3.6.0") == 1
    assert keras_steps.per_call(None, "tensorflow", False, "3.7.0") == keras_steps.AUTO_STEPS
    with pytest.raises(KxError) as refused:
        keras_steps.per_call(8, "tensorflow", False, "3.6.0")
    assert str(refused.value).startswith("backend.steps_per_execution=8 needs Keras 3.7 or later")


def test_auto_precision_follows_the_machine_and_the_engine():
    native = cpu.probe().native_bf16
    assert precision.resolve("auto", "tensorflow", on_gpu=False) == ("bfloat16" if native else "float32")
    assert precision.resolve("auto", "torch", on_gpu=False) == ("bfloat16" if native else "float32")
    assert precision.resolve("auto", "mxnet", on_gpu=False) == "float32"
    assert (
        precision.resolve("auto", "jax", on_gpu=False) == "float32"
    )  # slower in bfloat16 (benchmarks/backends.py)
    assert precision.resolve("bfloat16", "jax", on_gpu=False) == "bfloat16"
    assert precision.resolve("auto", "jax", on_gpu=True) == "float32"
    assert precision.resolve("float32", "torch", on_gpu=False) == "float32"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["backend=mxnet", "backend.precision=bfloat16"],
            "backend.precision=bfloat16 is not supported by backend=mxnet: use float32, or auto.",
        ),
        (
            ["backend=jax", "backend.threads=2"],
            "backend.threads=2 is not supported by backend=jax: XLA sizes its own thread pool; leave it null.",
        ),
        (
            ["backend=torch", "backend.input_pipeline=tf_data"],
            "backend.input_pipeline=tf_data is not supported by backend=torch: tf.data feeds TensorFlow; use arrays, or auto.",
        ),
        (
            ["backend.threads=0"],
            "Invalid config value backend.threads=0: expected an integer >= 1, or null for the engine's default.",
        ),
        (
            ["train.warmup_epochs=-1"],
            "Invalid config value train.warmup_epochs=-1.0: expected a number >= 0.",
        ),
        (
            ["train.schedule=linear"],
            "Invalid config value train.schedule=linear: expected one of constant, cosine.",
        ),
        (["backend.jit=maybe"], "Invalid config value backend.jit=maybe: expected one of auto, on, off."),
        (
            ["backend.steps_per_execution=0"],
            "Invalid config value backend.steps_per_execution=0: expected an integer >= 1, or null for auto.",
        ),
        (
            ["backend=mxnet", "backend.steps_per_execution=4"],
            "backend.steps_per_execution=4 is not supported by backend=mxnet: it runs one step per call; leave it null or 1.",
        ),
        (
            ["backend=torch", "backend.steps_per_execution=2"],
            "backend.steps_per_execution=2 is not supported by backend=torch: it runs one step per call; leave it null or 1.",
        ),
    ],
)
def test_bad_speed_settings_are_one_line_before_any_framework_loads(check_train, args, message):
    proc = check_train(*args)
    assert (proc.returncode, proc.stderr) == (2, f"kx: error: {message}\n")


@pytest.mark.slow
def test_time_to_accuracy_quick_mode_measures_both_sides():
    """The benchmark's own code on a slice: both recipes reach the quick target, the ratio is printed
    beside the CPU's features and each side's precision."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    proc = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "benchmarks" / "time_to_accuracy.py"), "--quick", "--seeds", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sides = dict(re.findall(r"^(reference|kx)\s*: time to 0.5: median (\d+) s", proc.stdout, re.M))
    assert set(sides) == {"reference", "kx"}, proc.stdout
    ratio = re.search(r"ratio kx / reference \(median time to 0.5\): ([0-9.]+)$", proc.stdout, re.M)
    mine, theirs = int(sides["kx"]), int(sides["reference"])  # whole seconds: each within 0.5 s
    assert (
        ratio
        and (mine - 0.5) / (theirs + 0.5) - 1e-3
        <= float(ratio.group(1))
        <= (mine + 0.5) / (theirs - 0.5) + 1e-3
    ), proc.stdout
    assert re.search(r"^kx\s*: .*final val_acc 0\.[5-9].*; (float32|bfloat16)$", proc.stdout, re.M), (
        proc.stdout
    )
    assert re.search(r"^reference\s*: .*; float32$", proc.stdout, re.M), proc.stdout
    assert f"CPU: {cpu.probe().describe()}; load average " in proc.stdout
