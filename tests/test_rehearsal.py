"""target=sagemaker_local: the job target=sagemaker would submit, run here as its container would."""

import json
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR
from tests.helpers.container import IMAGE_PYTHONS, image_python, script_command
from tests.helpers.moto import launch

pytestmark = pytest.mark.slow

PY38 = IMAGE_PYTHONS["mxnet"]


def rehearse(tmp_path, *args: str):
    proc = launch(tmp_path, "target=sagemaker_local", "dataset.limit=1500", "train.epochs=2", *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    name = next(line.split()[1] for line in proc.stderr.splitlines() if line.startswith("rehearsing "))
    return proc, tmp_path / "outputs" / "sagemaker_local" / name


def mlflow_run(folder: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("kx").experiment_id])
    return run


def test_tensorflow_job_runs_as_in_its_container_and_is_tracked(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists():
        pytest.skip("apt-get install dataset-fashion-mnist")
    proc, root = rehearse(tmp_path, "model.dense_units=64", f"target.python={image_python('tensorflow')}")
    hps = json.loads((root / "input" / "config" / "hyperparameters.json").read_text())
    assert hps["model.dense_units"] == "64" and hps["sagemaker_program"] == "train.py"
    assert set(json.loads((root / "input" / "config" / "inputdataconfig.json").read_text())) == {
        "training",
        "validation",
    }
    assert (
        json.loads((root / "input" / "config" / "resourceconfig.json").read_text())["current_host"]
        == "algo-1"
    )
    assert (root / "input" / "data" / "training" / "training.npz").is_file()
    argv = script_command(root)  # the toolkit's
    assert " -- train.py --backend tensorflow " in argv and " --model_dir s3://" in argv  # TF's convention
    assert "on Python 3.12." in proc.stdout  # the TensorFlow 2.19 image's
    assert (root / "model" / "model" / "1" / "saved_model.pb").is_file()  # TF Serving layout
    assert (root / "checkpoints" / root.name / "algo-1" / "last" / "monitor.json").is_file()  # the job's own
    metrics = json.loads((root / "output" / "data" / "metrics.json").read_text())
    with tarfile.open(root / "output" / "model.tar.gz") as tar:
        assert "model/1/saved_model.pb" in tar.getnames()
    run = mlflow_run(tmp_path)
    assert (
        run.data.tags["kx.target"] == "sagemaker_local"
        and run.data.tags["kx.sagemaker.status"] == "Completed"
    )
    # named as for local runs: val_acc is the per-epoch series, best_val_acc the best epoch's value
    assert run.data.metrics["val_acc"] == pytest.approx(metrics["final"]["val_acc"], abs=5e-5)
    assert run.data.metrics["best_val_acc"] == pytest.approx(metrics["best"]["val_acc"], abs=5e-5)
    assert run.data.metrics["best_epoch"] == metrics["best_epoch"]
    assert run.data.metrics["loss"] == pytest.approx(metrics["final"]["loss"], abs=5e-5)
    assert run.data.params["model.dense_units"] == "64"


def test_mxnet_job_runs_on_python_38_like_the_mxnet_image(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists():
        pytest.skip("apt-get install dataset-fashion-mnist")
    proc, root = rehearse(tmp_path, "backend=mxnet", "model=mlp", f"target.python={image_python('mxnet')}")
    assert "on Python 3.8." in proc.stdout
    argv = script_command(root)  # the toolkit's
    assert " -- train.py --backend mxnet " in argv and "--model_dir" not in argv  # MXNet's convention
    assert {p.name for p in (root / "model").iterdir()} == {
        "model-symbol.json",
        "model-0000.params",
        "model-shapes.json",
        "model-contract.json",  # what a client of the served model sends
    }
    assert mlflow_run(tmp_path).data.metrics["best_val_acc"] > 0.5


def test_py38_can_import_everything_a_job_imports():
    """Compile train.py and kx/ with Python 3.8 when it is there (the MXNet image's Python)."""
    if not PY38.exists():
        pytest.skip(f"{PY38} is missing (see .ci/run)")
    import subprocess

    code = (
        "import kx.pipeline, kx.backends.gluon, kx.backends.keras_multi_worker, kx.sagemaker.script_mode, "
        "kx.tracking, kx.data.fashion_mnist"
    )
    proc = subprocess.run([str(PY38), "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sys.version_info >= (3, 10)  # the launching side runs the project's own Python
