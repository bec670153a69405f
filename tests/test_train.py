"""train.py end to end: real training, the run's output folder, the exported model, MLflow."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from kx.data import synthetic
from tests.conftest import free_port
from tests.helpers.mlflow_models import model_files
from tests.helpers.mlflow_server import local_mlflow_server as serve_mlflow

pytestmark = pytest.mark.slow

QUICK = [
    "dataset=synthetic",
    "dataset.train_samples=600",
    "dataset.validation_samples=200",
    "dataset.image_size=[16,16]",
    "train.epochs=3",
    "train.batch_size=64",
]


def mlflow_client(folder: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def runs(folder: Path, experiment: str = "kx"):
    client = mlflow_client(folder)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real TensorFlow run on synthetic data, shared by the assertions below."""
    from tests.conftest import train

    folder = tmp_path_factory.mktemp("tf")
    proc = train(folder, *QUICK, "hydra.run.dir=run", "model.dense_units=64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder, proc


def test_run_folder_has_config_metrics_plots_and_model(trained):
    folder, proc = trained
    out = folder / "run"
    for name in ("config.yaml", "metrics.json", "training_curves.png", "confusion_matrix.png", "train.log"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "model" / "model" / "1" / "saved_model.pb").is_file()
    assert (out / "model" / "model.keras").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and len(metrics["history"]["val_acc"]) == 3
    assert metrics["best"]["val_acc"] == max(metrics["history"]["val_acc"])
    assert metrics["best"]["val_acc"] > 0.5  # 10 classes: chance is 0.1
    assert "dense_units: 64" in (out / "config.yaml").read_text()


def test_log_has_one_line_per_epoch_and_the_best_value_last(trained):
    _, proc = trained
    epochs = [line for line in proc.stdout.splitlines() if "] - epoch=" in line]
    assert len(epochs) == 3
    assert all(
        re.search(r"epoch=\d+ loss=[\d.]+ acc=[\d.]+ val_loss=[\d.]+ val_acc=[\d.]+$", e) for e in epochs
    )
    metric_lines = [line for line in proc.stdout.splitlines() if "val_acc=" in line]
    assert metric_lines[-1].split(" - ")[-1].startswith("best_val_acc=")


def test_exported_savedmodel_reloads_and_predicts_like_the_keras_file(trained):
    import keras
    import tensorflow as tf

    folder, _ = trained
    data = synthetic.generate(600, 200, [16, 16], 1, 10, 0.35, seed=42).dataset()
    served = tf.saved_model.load(str(folder / "run" / "model" / "model" / "1"))
    probs = served.serve(tf.constant(data.x_val)).numpy()
    native = keras.saving.load_model(folder / "run" / "model" / "model.keras")
    assert probs.shape == (200, 10)
    # the same weights (the served graph runs kx's folded first block, the file Keras's two layers):
    # apart by rounding only, which bfloat16 (auto on CPUs that compute it) makes coarser
    np.testing.assert_allclose(probs, native.predict(data.x_val, verbose=0), atol=1e-4)
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    # the exported model is the best epoch's (best weights restored)
    assert (probs.argmax(1) == data.y_val).mean() == pytest.approx(metrics["best"]["val_acc"], abs=1e-6)


def test_mlflow_run_has_params_tags_metric_history_and_artifacts(trained):
    folder, _ = trained
    client, found = runs(folder)
    assert len(found) == 1
    run = found[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "3" and run.data.params["model.dense_units"] == "64"
    assert run.data.params["train.optimizer"] == "sgd"
    # named after what it trains and its overrides (hydra.run.dir is no hyperparameter)
    assert run.info.run_name.startswith("tensorflow cnn synthetic train_samples=600 validation_samples=200")
    assert {key.split(".")[0] for key in run.data.params} == {"backend", "model", "dataset", "train"}
    tags = run.data.tags
    assert tags["kx.config.target.name"] == "local" and "kx.config.tracking.uri" not in tags  # unset: no tag
    assert (tags["kx.backend"], tags["kx.model"], tags["kx.dataset"], tags["kx.target"]) == (
        "tensorflow",
        "cnn",
        "synthetic",
        "local",
    )
    assert "train.epochs=3" in tags["kx.overrides"] and tags["kx.version.tensorflow"]
    assert len(tags["mlflow.source.git.commit"]) == 40
    history = client.get_metric_history(run.info.run_id, "val_acc")
    assert [m.step for m in history] == [1, 2, 3]
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    assert run.data.metrics["best_val_acc"] == pytest.approx(metrics["best"]["val_acc"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "config.yaml",
        "metrics.json",
        "training_curves.png",
        "confusion_matrix.png",
    } <= artifacts
    assert {"model.keras", "model", "model-contract.json"} <= model_files(
        client.tracking_uri, run.info.run_id
    )


def test_same_seed_gives_identical_metrics(trained, tmp_path):
    from tests.conftest import train

    folder, _ = trained
    proc = train(tmp_path, *QUICK, "hydra.run.dir=run", "model.dense_units=64", "tracking.enabled=false")
    assert proc.returncode == 0, proc.stderr
    first = json.loads((folder / "run" / "metrics.json").read_text())["history"]
    again = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert first == again
    assert not (tmp_path / "mlflow.db").exists()  # tracking.enabled=false writes no store


def test_multirun_is_one_parent_run_with_a_child_per_job(run_train, tmp_path):
    run_train(
        "-m", *QUICK, "model=mlp", "train.epochs=2", "train.learning_rate=0.001,0.05", "hydra.sweep.dir=sweep"
    )
    _, found = runs(tmp_path)
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.data.params["train.learning_rate"] for c in children) == ["0.001", "0.05"]
    best = max(children, key=lambda c: c.data.metrics["best_val_acc"])
    assert parent.data.tags["kx.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_val_acc"] == best.data.metrics["best_val_acc"]
    assert parent.info.status == "FINISHED"
    assert (tmp_path / "sweep" / "0" / "metrics.json").is_file()
    assert (tmp_path / "sweep" / "1" / "metrics.json").is_file()


def test_unreachable_tracking_server_fails_before_training(run_train, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    proc = run_train(*QUICK, "hydra.run.dir=run", f"tracking.uri={uri}", check=False)
    assert proc.returncode == 2
    assert f"MLflow tracking server tracking.uri='{uri}' is unreachable" in proc.stderr
    assert "tracking.enabled=false" in proc.stderr and "Traceback" not in proc.stderr
    assert "epoch=1" not in proc.stdout and not (tmp_path / "run" / "metrics.json").exists()
    assert (tmp_path / "run" / "config.yaml").is_file()


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server on a free loopback port, stopped by PID afterwards."""
    with serve_mlflow(tmp_path) as uri:
        yield uri


def test_http_tracking_server(run_train, mlflow_server):
    from mlflow.tracking import MlflowClient

    run_train(
        *QUICK,
        "train.epochs=2",
        "model=mlp",
        "hydra.run.dir=run",
        f"tracking.uri={mlflow_server}",
        "tracking.experiment=remote",
    )
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("remote")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and len(client.get_metric_history(run.info.run_id, "loss")) == 2
    assert "model-contract.json" in model_files(mlflow_server, run.info.run_id)


def test_mxnet_through_train_py_is_tracked_like_tensorflow(run_train, tmp_path):
    if importlib.util.find_spec("mxnet") is None:
        pytest.skip("mxnet is not installed")
    proc = run_train(*QUICK, "backend=mxnet", "hydra.run.dir=run")
    out = tmp_path / "run"
    assert [line.split(" - ")[-1][:8] for line in proc.stdout.splitlines() if "] - epoch=" in line] == [
        "epoch=1 ",
        "epoch=2 ",
        "epoch=3 ",
    ]
    metric_lines = [line for line in proc.stdout.splitlines() if "val_acc=" in line]
    assert metric_lines[-1].split(" - ")[-1].startswith("best_val_acc=")
    assert {"model-symbol.json", "model-0000.params", "model-shapes.json"} <= {
        p.name for p in (out / "model").iterdir()
    }
    shapes = json.loads((out / "model" / "model-shapes.json").read_text())
    assert shapes == [{"name": "data", "shape": [1, 1, 16, 16]}]
    client, (run,) = runs(tmp_path)
    assert run.data.tags["kx.backend"] == "mxnet" and run.data.tags["kx.version.mxnet"] == "1.9.1"
    assert len(client.get_metric_history(run.info.run_id, "val_acc")) == 3
    assert "model-symbol.json" in model_files(client.tracking_uri, run.info.run_id)
