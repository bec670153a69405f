"""Config composition and the errors a user sees for bad values."""

import json
import subprocess
import sys
from typing import Dict, Set, Tuple

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
    assert cfg.train.nesterov and (cfg.train.batch_size, cfg.train.epochs) == (None, 4)  # None: automatic
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


# ``python train.py ARGV`` for each ARGV, one after another in one fresh process (a process per
# command would start Python and Hydra each time): exit code, stdout, stderr, and the top-level
# packages imported by then (the frameworks stay unimported only if every command leaves them out)
IN_ONE_PROCESS = """
import contextlib, io, json, runpy, sys
train, runs = sys.argv[1], []
for argv in json.loads(sys.argv[2]):
    sys.argv, out, err, code = [train, *argv], io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(train, run_name="__main__")
        except SystemExit as done:
            code = done.code
    runs.append([code, out.getvalue(), err.getvalue(), sorted(m for m in sys.modules if "." not in m)])
print(json.dumps(runs))
"""


@pytest.fixture(scope="module")
def fresh_train_py(tmp_path_factory) -> Dict[str, Tuple[subprocess.CompletedProcess, Set[str]]]:
    """The commands below run by train.py in a fresh process, by name: the finished command and the
    packages imported by its end."""
    commands = {
        "help": ["--help"],
        "cfg": ["--cfg", "job"],
        "range": [
            "train.epochs=0",
            f"hydra.run.dir={tmp_path_factory.mktemp('run')}",
            "tracking.enabled=false",
        ],
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            IN_ONE_PROCESS,
            str(PROJECT_DIR / "train.py"),
            json.dumps(list(commands.values())),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)
    return {
        name: (subprocess.CompletedProcess(argv, code, out, err), set(imported))
        for (name, argv), (code, out, err, imported) in zip(commands.items(), runs)
    }


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


def test_range_error_from_train_py_is_one_line_and_imports_no_framework(fresh_train_py):
    proc, imported = fresh_train_py["range"]
    assert proc.returncode == 2
    assert "kx: error: Invalid config value train.epochs=0: expected an integer >= 1." in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not imported & set(HEAVY)


@pytest.mark.parametrize("command", ["help", "cfg"])
def test_help_and_cfg_are_fast_paths_without_frameworks(fresh_train_py, command):
    proc, imported = fresh_train_py[command]
    assert proc.returncode == 0, proc.stderr
    assert not imported & set(HEAVY), imported & set(HEAVY)
    if command == "help":
        assert "backend: jax, mxnet, tensorflow, torch" in proc.stdout
        assert "dataset: digits, fashion_mnist, image_folder, npz, synthetic, tfds" in proc.stdout
        assert "model: cnn, custom, mlp, resnet, separable" in proc.stdout
    else:
        assert "learning_rate: 0.05" in proc.stdout
