"""Runs line up in MLflow's comparison: hyperparameters as params, locations as tags, telling names."""

from kx.sagemaker.job_tracking import job_config
from kx.tracking.mlflow_tracker import config_params
from kx.tracking.params import head, run_name


def test_params_are_hyperparameters_and_locations_are_tags(compose_cfg):
    cfg = compose_cfg(
        "dataset=npz",
        "dataset.path=/data/my.npz",
        "train.checkpoint_dir=ckpt",
        "tracking.uri=sqlite:///x.db",
        "export.model_dir=/tmp/m",
    )
    params, tags = config_params(cfg)
    assert params["train.learning_rate"] == "0.05" and params["model.dropout"] == "0.3"
    assert params["backend.name"] == "tensorflow" and params["dataset.name"] == "npz"
    for key in ("dataset.path", "train.checkpoint_dir", "tracking.uri", "export.model_dir"):
        assert key not in params, key
        assert f"kx.config.{key}" in tags, key
    assert (
        tags["kx.config.dataset.path"] == "/data/my.npz" and tags["kx.config.train.checkpoint_dir"] == "ckpt"
    )
    assert {key.split(".")[0] for key in params} == {"backend", "model", "dataset", "train"}
    assert "kx.config.dataset.channel_dir" not in tags  # unset: no tag
    # the class a config names is how the run is built, not a hyperparameter to compare runs by
    assert "backend._target_" not in params
    assert tags["kx.config.backend._target_"] == "kx.backends.keras3.KerasBackend"


def test_a_sagemaker_job_and_its_local_twin_have_the_same_params(compose_cfg):
    """The job gets train.checkpoint_dir=/opt/ml/checkpoints from launch.py; a local run has none."""
    local, _ = config_params(compose_cfg("model=mlp", "dataset=digits", "train.epochs=1"))
    hyperparameters = {
        "backend": "tensorflow",
        "model": "mlp",
        "dataset": "digits",
        "train.epochs": "1",
        "train.checkpoint_dir": "/opt/ml/checkpoints",
    }
    job, tags = config_params(job_config(hyperparameters))
    assert job == local
    assert tags["kx.config.train.checkpoint_dir"] == "/opt/ml/checkpoints"


def test_a_sweep_trial_has_the_same_params_as_a_single_run(compose_cfg):
    single, _ = config_params(compose_cfg("model=mlp"))
    trial, tags = config_params(compose_cfg("model=mlp", "sweep=quick"))
    assert trial == single and tags["kx.config.sweep.name"] == "quick"


def test_a_run_is_named_after_what_it_trains_and_its_overrides(compose_cfg):
    overrides = [
        "backend=mxnet",
        "train.epochs=20",
        "hydra.run.dir=/tmp/run",
        "tracking.uri=sqlite:///a.db",
        "train.checkpoint_dir=/opt/ml/checkpoints",
        "+model.bn_momentum=0.9",
        "target=local",
    ]
    cfg = compose_cfg(*overrides)
    assert run_name(*head(cfg), overrides) == "mxnet cnn fashion_mnist epochs=20 bn_momentum=0.9"
    assert run_name(*head(compose_cfg()), []) == "tensorflow cnn fashion_mnist"
    assert run_name("mxnet", "cnn", "fashion_mnist", ["target=sagemaker"], "sagemaker") == (
        "mxnet cnn fashion_mnist on sagemaker"  # its local twin's name, and where it ran
    )


def test_a_long_name_is_cut_to_what_the_runs_table_shows(compose_cfg):
    overrides = [f"train.learning_rate=0.0{i}" for i in range(1, 30)]
    name = run_name("torch", "mlp", "digits", overrides)
    assert len(name) == 80 and name.startswith("torch mlp digits learning_rate=0.01 ")
    assert name.endswith("...")
    job = run_name("torch", "mlp", "digits", overrides, "sagemaker_local")
    assert len(job) == 80 and job.endswith("... on sagemaker_local")


def _trials():
    from kx.sweep.report import TrialResult

    return [
        TrialResult(0, {"train.learning_rate": 0.01, "model.dense_units": 32}, "COMPLETE", 0.81, run_id="a0"),
        TrialResult(1, {"train.learning_rate": 0.1, "model.dense_units": 64}, "COMPLETE", 0.9, run_id="b1"),
        TrialResult(
            2, {"train.learning_rate": 0.002, "model.dense_units": 128}, "FAIL", reason="nan", run_id="c2"
        ),
    ]


def test_a_sweep_report_draws_every_trial_over_every_parameter_and_the_objective(tmp_path):
    import re

    from kx.config.objective import Objective
    from kx.sweep.report import summarize

    summarize(None, Objective("val_acc", "maximize"), _trials(), tmp_path, ["model=mlp"])
    page = (tmp_path / "parallel_coordinates.html").read_text()
    assert re.findall(r'<path class="trial (\w+)" data-trial="(\d)"', page) == [
        ("complete", "0"),
        ("complete", "1"),
        ("fail", "2"),
    ]
    keys = re.findall(r'<g class="axis" data-axis="\d" data-key="([\w.]+)"', page)
    assert keys == ["model.dense_units", "train.learning_rate", "val_acc"]
    assert "train.learning_rate (log)" in page and "no value" in page  # the failed trial has no val_acc
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert page.count('<tr data-trial="') == 3


def test_a_sweep_parents_description_links_to_the_trials_comparison():
    from urllib.parse import unquote

    from kx.config.objective import Objective
    from kx.sweep.report import best_trial, description

    goal, trials = Objective("val_acc", "maximize"), _trials()
    text = description("7", "p1", goal, best_trial(goal, trials), trials)
    assert text.startswith(
        "[Compare the 3 trials side by side](#/compare-runs?runs="
    )  # MLflow folds the rest
    assert text.endswith(
        "**Sweep of 3 trials** (2 complete, 1 fail), objective `val_acc` (maximize); "
        "best: trial 1, val_acc=0.9000."
    )
    assert (
        '(#/compare-runs?runs=["a0","b1","c2"]&experiments=["7"]&workflowType=machine_learning)'
        in unquote(text)
    )
    assert (
        "(#/experiments/7/runs/p1/artifacts/parallel_coordinates.html?workflowType=machine_learning)" in text
    )


def test_launch_ui_refuses_a_port_that_is_none_in_one_line(tmp_path, launch_here):
    proc = launch_here("ui", "--port", "70000")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr
        == "kx: error: --port 70000 is not a port: give one from 1 to 65535, or none for a free one.\n"
    )
    assert not (tmp_path / "mlflow.db").exists()  # refused before opening any store
