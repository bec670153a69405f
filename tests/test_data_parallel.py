"""Data-parallel training over several devices, exercised on CPU split into logical devices
(``backend.cpu_devices=2``): the same code path every GPU of a machine takes."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR, train

TINY = ["dataset=digits", "model=mlp", "train.epochs=2", "train.batch_size=128"]
ENGINES = ["tensorflow", "jax", "mxnet"]
DEVICES = {"tensorflow": "cpu:0, cpu:1", "jax": "cpu:0, cpu:1", "mxnet": "cpu(0), cpu(1)"}


def history(folder: Path) -> dict:
    return json.loads((folder / "run" / "metrics.json").read_text())["history"]


def trained(folder: Path, *args: str) -> str:
    """Train in ``folder`` (run folder ``run/``); return the log printed."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = train(folder, *TINY, "hydra.run.dir=run", *args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(params=ENGINES, scope="module")
def backend(request) -> str:
    if importlib.util.find_spec(request.param) is None:
        pytest.skip(f"{request.param} is not installed (pip install -e .[{request.param}])")
    return request.param


@pytest.fixture(scope="module")
def two_devices(backend, tmp_path_factory):
    """One run over two logical CPU devices, tracked in its own MLflow store."""
    folder = tmp_path_factory.mktemp(backend)
    return folder, trained(folder, f"backend={backend}", "backend.cpu_devices=2")


@pytest.mark.slow
def test_run_reports_both_devices_in_its_log_and_mlflow(backend, two_devices):
    from mlflow.tracking import MlflowClient

    folder, log = two_devices
    assert f"backend {backend} on {DEVICES[backend]}" in log
    assert (
        f"data-parallel over 2 devices: {DEVICES[backend]}; each global batch of 128 is split into 64" in log
    )
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("kx").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["kx.devices"] == DEVICES[backend]


@pytest.mark.slow
def test_learns_digits_well_above_chance(two_devices):
    folder, _ = two_devices
    assert max(history(folder)["val_acc"]) > 0.5  # 10 classes: chance is 0.1


@pytest.mark.slow
def test_same_seed_same_metrics(backend, two_devices, tmp_path):
    folder, _ = two_devices
    trained(tmp_path, f"backend={backend}", "backend.cpu_devices=2", "tracking.enabled=false")
    assert history(tmp_path) == history(folder)


@pytest.mark.slow
def test_two_devices_train_the_same_model_as_one(backend, tmp_path):
    """Without dropout (the one random draw per device) the summed gradients of two half-batches
    are one batch's: the training curve is one device's, up to float32 rounding. (Both sides feed
    the arrays: input_pipeline=auto picks tf.data for TensorFlow on one device only.)"""
    runs = {}
    for count in (1, 2):
        trained(
            tmp_path / str(count),
            f"backend={backend}",
            f"backend.cpu_devices={count}",
            "model.dropout=0",
            "backend.precision=float32",
            "backend.input_pipeline=arrays",
            "tracking.enabled=false",
        )
        runs[count] = history(tmp_path / str(count))
    for name in ("loss", "acc"):
        assert runs[2][name] == pytest.approx(runs[1][name], abs=1e-4)


@pytest.mark.slow
def test_torch_trains_on_one_device_and_says_so(tmp_path):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install -e .[torch])")
    log = trained(
        tmp_path, "backend=torch", "backend.cpu_devices=2", "train.epochs=1", "tracking.enabled=false"
    )
    assert "backend=torch trains on one device (cpu): Keras 3 has no data-parallel training on PyTorch" in log
    assert "backend torch on cpu\n" in log and "data-parallel over" not in log


@pytest.mark.parametrize(
    "arg, message",
    [
        ("backend.cpu_devices=0", "backend.cpu_devices=0: expected an integer >= 1"),
        ("backend.num_gpus=-1", "backend.num_gpus=-1: expected an integer >= 0 (0: CPU only), or null"),
    ],
)
def test_bad_device_counts_are_one_line_exit_2(check_train, arg, message):
    proc = check_train("backend=mxnet", arg)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("kx: error: Invalid config value ") and message in proc.stderr


@pytest.mark.slow
def test_batch_that_does_not_split_over_the_devices_is_one_line_exit_2(tmp_path):
    proc = train(
        tmp_path,
        *TINY,
        "backend=mxnet",
        "backend.cpu_devices=2",
        "train.batch_size=5",
        "tracking.enabled=false",
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == (
        "kx: error: train.batch_size=5 does not split over 2 devices: it is the global batch, "
        "so it must be a multiple of 2 and at most the 1438 training samples.\n"
    )


SECOND_RUN = """
from kx.backends import BackendError, create_backend
from kx.run_config import compose

for count in (1, 2):
    backend = create_backend(compose(["backend=tensorflow", f"backend.cpu_devices={count}"]).backend)
    try:
        backend.prepare(seed=1, deterministic=True)
        backend.keras.ops.ones(1)  # TensorFlow runs from here on
    except BackendError as err:
        print(err)
"""


@pytest.mark.slow
def test_a_cpu_device_count_fixed_earlier_in_the_process_is_named():
    """A sweep's trials share one process: TensorFlow's devices are fixed by the first trial."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed (pip install -e .[tensorflow])")
    proc = subprocess.run([sys.executable, "-c", SECOND_RUN], capture_output=True, text=True, cwd=PROJECT_DIR)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == (
        "backend.cpu_devices=2 cannot take effect: TensorFlow already runs in this process with 1 CPU "
        "device(s), fixed when it started; run it in a fresh process.\n"
    )
