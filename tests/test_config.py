"""Config composition and the errors a user sees for bad values."""

import subprocess
import sys

import pytest

from kx.config import ConfigError
from kx.run_config import validate
from tests.conftest import PROJECT_DIR

HEAVY = ("tensorflow", "keras", "mxnet", "mlflow", "sagemaker", "torch", "jax")


def test_default_experiment_is_the_reference_cnn_on_fashion_mnist_with_kx_fast_training(compose_cfg):
    cfg = compose_cfg()
    assert (cfg.backend.name, cfg.model.name, cfg.dataset.name, cfg.target.name) == (
        "tensorflow",
        "cnn",
        "fashion_mnist",
        "local",
    )
    assert [(c.filters, str(c.padding)) for c in cfg.model.conv_layers] == [(64, "same"), (128, "valid")]
    assert (cfg.model.dense_units, cfg.model.dropout) == (512, 0.3)
    assert (str(cfg.train.optimizer), cfg.train.learning_rate, cfg.train.momentum) == ("sgd", 0.05, 0.9)
    assert cfg.train.nesterov and (cfg.train.batch_size, cfg.train.epochs) == (None, 5)  # None: automatic
    assert (str(cfg.train.schedule), cfg.train.warmup_epochs) == ("cosine", 0.3)
    assert (str(cfg.backend.precision), str(cfg.backend.jit), cfg.backend.threads) == ("auto", "auto", None)


def test_group_options_compose(compose_cfg):
    cfg = compose_cfg("model=mlp", "dataset=synthetic", "dataset.image_size=[8,8]", "train.epochs=3")
    assert cfg.model.conv_layers == [] and cfg.dataset.image_size == [8, 8] and cfg.train.epochs == 3


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=-1", "train.epochs=-1: expected an integer >= 1"),
        ("model.dropout=1.0", "model.dropout=1.0: expected a number in [0, 1)"),
        ("train.learning_rate=0", "train.learning_rate=0.0: expected a number > 0"),
        ("dataset=digits dataset.validation_fraction=1.5", "dataset.validation_fraction=1.5"),
    ],
)
def test_out_of_range_values_are_rejected_with_the_key_and_the_range(compose_cfg, override, message):
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(*override.split()))
    assert message in str(err.value)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-X", "importtime", str(PROJECT_DIR / "train.py"), *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=120,
    )


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "train.optimizer=adamw",
            "Invalid config value train.optimizer=adamw: expected one of sgd, adam, rmsprop.",
        ),
        ("train.epochs=ten", "Invalid config value train.epochs=ten: expected an integer."),
        (
            "dataset.colour=red",
            "Unknown config key dataset.colour; did you mean dataset.download, dataset.limit or dataset.channel_dir?",
        ),
        (
            "dataset=mnist",
            "Unknown option dataset=mnist: choose one of digits, fashion_mnist, image_folder, npz, synthetic, tfds.",
        ),
    ],
)
def test_bad_overrides_fail_at_composition_without_traceback(check_train, override, message):
    proc = check_train("--cfg", "job", override)
    assert proc.returncode == 2
    assert f"kx: error: {message}\n" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_range_error_from_train_py_is_one_line_and_imports_no_framework(tmp_path):
    proc = _cli("train.epochs=0", f"hydra.run.dir={tmp_path}", "tracking.enabled=false")
    assert proc.returncode == 2
    assert "kx: error: Invalid config value train.epochs=0: expected an integer >= 1." in proc.stderr
    assert "Traceback" not in proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY)


@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"]])
def test_help_and_cfg_are_fast_paths_without_frameworks(args):
    proc = _cli(*args)
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), imported & set(HEAVY)
    if args == ["--help"]:
        assert "backend: jax, mxnet, tensorflow, torch" in proc.stdout
        assert "dataset: digits, fashion_mnist, image_folder, npz, synthetic, tfds" in proc.stdout
        assert "model: cnn, custom, mlp, resnet, separable" in proc.stdout
    else:
        assert "learning_rate: 0.05" in proc.stdout
