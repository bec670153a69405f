"""SageMaker jobs as the framework images run them: the real training toolkit (PyPI sagemaker-training)
decodes the hyperparameters, builds train.py's argv and environment, and reports the failure."""

import re
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from kx.sagemaker import job_request, script_mode
from tests.helpers.container import image_python, toolkit_argv, toolkit_job, write_channel
from tests.helpers.moto import launch
from tests.helpers.sweeps import TINY

# Every type a value can have, as launch.py accepts them on the command line.
VALUES = {
    "none": None,
    "true": True,
    "false": False,
    "int": -3,
    "float": 0.05,
    "small float": 1e-05,
    "word": "adam",
    "words": "two words",
    "quotes": 'kx\'s "best" model',
    "looks like null": "null",
    "looks like int": "64",
    "looks like bool": "True",
    "empty": "",
    "path": "/opt/ml/input/data",
    "s3": "s3://bucket/key",
    "list": [64, 128],
    "mixed list": ["a b", 1.5, None, True],
    "dict": {"a": 1, "b": "c d"},
}


def test_every_value_type_survives_the_toolkits_decoding(tmp_path):
    """launch.py's encoding -> hyperparameters.json -> the toolkit's argv -> train.py's overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hps = {f"v{i}": script_mode.encode_value(value) for i, value in enumerate(VALUES.values())}
    received = script_mode.parse_hyperparameters(toolkit_argv(tmp_path, hps))
    assert received["v0"] == "null"  # not the empty argument the toolkit makes of a JSON null
    parser = OverridesParser.create()
    for i, (name, value) in enumerate(VALUES.items()):
        (override,) = parser.parse_overrides([f"k={script_mode.decode_value(received[f'v{i}'])}"])
        assert override.value() == value, name


def job_config(root: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(root / "output" / "data" / "config.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "mxnet"])
def test_values_launch_py_accepts_reach_train_py_as_the_same_config(tmp_path, backend, compose_cfg):
    python = image_python(backend)
    name = 'kx\'s "best" model'
    overrides = [
        f"backend={backend}",
        "model=mlp",
        "dataset=synthetic",
        "dataset.train_samples=200",
        "dataset.validation_samples=100",
        "dataset.limit=null",
        "backend.num_gpus=null",
        "dataset.image_size=[12,12]",
        "train.nesterov=false",
        "train.epochs=1",
        "train.learning_rate=0.05",
        "export.name='kx\\'s \"best\" model'",
    ]
    proc = launch(tmp_path, "target=sagemaker_local", f"target.python={python}", *overrides)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    root = next(p for p in (tmp_path / "outputs" / "sagemaker_local").iterdir() if p.name != "s3")
    log = (root / "output" / "rehearsal.log").read_text()
    assert f"{python} -- train.py --backend {backend} " in log  # the toolkit's own command line
    assert "--backend.num_gpus null " in log and "--dataset.limit null " in log
    got, wanted = job_config(root), OmegaConf.to_container(compose_cfg(*overrides))
    for section, leaf in (o.split("=")[0].split(".") for o in overrides if "." in o.split("=")[0]):
        assert got[section][leaf] == wanted[section][leaf], f"{section}.{leaf}"
    # /opt/ml/checkpoints, relocated, and the job's own folder in it
    assert got["train"]["checkpoint_dir"] == str(root / "checkpoints" / root.name / "algo-1")
    exported = (
        root / "model" / (f"{name}/1/saved_model.pb" if backend == "tensorflow" else f"{name}-symbol.json")
    )
    assert exported.is_file()


# Each failure before training, as a console user, boto3 or a tuning job can cause it.
FAILURES = {
    "unknown key": (
        {"dataset": "digits", "train.learning_rat": "0.1"},
        [],
        "Unknown hyperparameter --train.learning_rat; nearest valid keys: train.learning_rate",
    ),
    "malformed value": (
        {"dataset": "digits", "train.epochs": "abc"},
        [],
        "Invalid config value train.epochs=abc: expected an integer.",
    ),
    "missing channel": (
        {"dataset": "fashion_mnist"},
        ["training"],
        "dataset=fashion_mnist reads the job's training and validation channels, but "
        "validation is missing (the job has: training);",
    ),
    "bad data": (
        {"dataset": "fashion_mnist"},
        ["training", "validation", "corrupt training"],
        "Cannot read ",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "mxnet"])
@pytest.mark.parametrize("failure", FAILURES)
def test_each_failure_before_training_is_the_jobs_one_line_reason(tmp_path, backend, failure):
    hyperparameters, channels, reason = FAILURES[failure]
    files = {name: write_channel(tmp_path / "data" / name, name) for name in channels if " " not in name}
    if "corrupt training" in channels:
        files["training"].write_bytes(b"not an npz file")
    proc, root = toolkit_job(tmp_path, backend, hyperparameters, files)
    written = (root / "output" / "failure").read_text()
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]  # the toolkit's own exit status
    assert reason in written and "\n" not in written, written
    assert f"kx: error: {written}\n" in proc.stderr and "ExitCode 2\n" in proc.stderr  # train.py's
    assert "Traceback" not in proc.stdout + proc.stderr


def test_the_tensorflow_image_environment_has_the_images_versions_and_the_lowest_keras_allowed():
    """The TensorFlow rehearsal runs the default image's Python and TensorFlow with the lowest Keras
    the job's requirements allow: a Keras API newer than that fails a test here, not a job there."""
    _, version, py_version = job_request.TRAINING_IMAGES["tensorflow"]
    code = (
        "import sys; from importlib.metadata import version as v; "
        "print('%d%d' % sys.version_info[:2], v('tensorflow-cpu'), v('keras'))"
    )
    proc = subprocess.run(
        [str(image_python("tensorflow")), "-c", code], capture_output=True, text=True, check=True
    )
    python, tensorflow, keras = proc.stdout.split()
    (floor,) = re.findall(r"keras>=([\d.]+)", job_request.job_requirements("tensorflow"))
    assert f"py{python}" == py_version and tensorflow.startswith(f"{version}.")
    assert keras.split(".")[:2] == floor.split(".")[:2] and "keras" not in job_request.job_requirements(
        "mxnet"
    )


@pytest.mark.slow
def test_a_failing_plot_is_a_warning_and_the_model_is_kept(tmp_path, run_train):
    run = tmp_path / "run"
    (run / "training_curves.png").mkdir(parents=True)  # the plot cannot be saved there
    tiny = [o for o in TINY if not o.startswith("backend=")]
    proc = run_train("backend=mxnet", *tiny, "tracking.enabled=false", f"hydra.run.dir={run}")
    assert "kx: warning: the plots were not drawn (IsADirectoryError" in proc.stdout + proc.stderr
    assert (run / "model" / "model-symbol.json").is_file() and (run / "metrics.json").is_file()
