"""SageMaker script mode: `--key value` hyperparameters and SM_* variables become Hydra overrides."""

import pytest

from kx.config import ConfigError
from kx.sagemaker import script_mode
from kx.sagemaker.script_mode import HyperparameterError, decode_value, hydra_argv

SM_ENV = {
    "SM_TRAINING_ENV": "{}",
    "SM_MODEL_DIR": "/opt/ml/model",
    "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
    "SM_CHANNEL_TRAINING": "/opt/ml/input/data/training",
    "SM_CHANNEL_VALIDATION": "/opt/ml/input/data/validation",
    "SM_NUM_GPUS": "1",
}


@pytest.fixture
def translate(compose_cfg):
    def _translate(argv, env=None):
        return hydra_argv(argv, SM_ENV if env is None else env, lambda overrides: compose_cfg(*overrides))

    return _translate


@pytest.mark.parametrize(
    "raw, hydra",
    [
        ('"adam"', "adam"),  # JSON-encoded by the SDK
        ("adam", "adam"),
        ("0.01", "0.01"),
        ("True", "true"),
        ("false", "false"),
        ("[64, 128]", "[64,128]"),
        ("s3://bucket/key", "s3://bucket/key"),
        ('"two words"', "'two words'"),
    ],
)
def test_values_are_decoded_into_hydra_syntax(raw, hydra):
    assert decode_value(raw) == hydra


def test_tensorflow_container_argv(translate):
    argv = [
        "--model_dir",
        "s3://bucket/job/model",
        "--train.learning_rate",
        "0.05",
        "--backend",
        '"tensorflow"',
        "--model.dropout=0.4",
        "--sagemaker_program",
        "train.py",
        "--sagemaker_region",
        '"eu-west-1"',
    ]
    assert translate(argv) == [
        "backend=tensorflow",
        "train.learning_rate=0.05",
        "model.dropout=0.4",
        "export.model_dir=/opt/ml/model",
        "hydra.run.dir=/opt/ml/output/data",
        "backend.num_gpus=1",
        "dataset.channel_dir=/opt/ml/input/data",
        "tracking.enabled=false",
    ]


def test_mxnet_container_argv_and_explicit_values_win(translate):
    argv = [
        "--backend",
        "mxnet",
        "--train.batch-size",
        "256",
        "--tracking.enabled",
        "true",
        "--dataset",
        "digits",
    ]
    no_channels = {k: v for k, v in SM_ENV.items() if not k.startswith("SM_CHANNEL_")}
    overrides = translate(argv, no_channels)  # digits is made in the job: launch.py ships no channel
    assert overrides[:4] == [
        "backend=mxnet",
        "dataset=digits",
        "train.batch_size=256",
        "tracking.enabled=true",
    ]
    assert not any(o.startswith("dataset.channel_dir") for o in overrides)
    assert overrides.count("tracking.enabled=true") == 1 and "tracking.enabled=false" not in overrides


def test_plain_hydra_usage_passes_through(translate):
    argv = ["train.epochs=2", "-m", "--cfg", "job"]
    assert translate(argv) == argv


def test_unknown_key_names_the_nearest_valid_keys(translate):
    with pytest.raises(HyperparameterError) as err:
        translate(["--train.learning_rat", "0.1"])
    assert str(err.value).startswith(
        "Unknown hyperparameter --train.learning_rat; nearest valid keys: train.learning_rate"
    )


def test_value_missing_is_reported(translate):
    with pytest.raises(HyperparameterError, match="Hyperparameter --train.epochs has no value"):
        translate(["--train.epochs", "--backend", "mxnet"])


def test_train_py_writes_the_failure_file_sagemaker_shows(tmp_path, check_train, monkeypatch):
    """In a job (its ``SM_*`` environment) the one line is also the FailureReason file; the process
    itself: test_multi_worker.py's bad host, through tests.conftest.job_failure."""
    monkeypatch.setenv("SM_TRAINING_ENV", "{}")
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    proc = check_train("--model.dropuot", "0.2")
    failure = (tmp_path / "output" / "failure").read_text()
    assert (proc.returncode, proc.stderr) == (2, f"kx: error: {failure}\n")
    assert failure.startswith("Unknown hyperparameter --model.dropuot; nearest valid keys: model.dropout")


def test_failure_file_only_inside_sagemaker(tmp_path):
    assert script_mode.write_failure("boom", {}) is None


def test_a_malformed_value_is_one_line_naming_it(translate):
    with pytest.raises(ConfigError) as err:
        translate(["--train.epochs", "abc"])
    assert str(err.value) == "Invalid config value train.epochs=abc: expected an integer."


def test_a_missing_channel_is_named(translate):
    env = {k: v for k, v in SM_ENV.items() if k != "SM_CHANNEL_VALIDATION"}
    with pytest.raises(script_mode.ChannelError, match="but validation is missing"):
        translate(["--dataset", "fashion_mnist"], {**env, "SM_CHANNELS": '["training"]'})


def test_opt_ml_paths_follow_the_toolkits_base_dir(translate):
    argv = ["--train.checkpoint_dir", "/opt/ml/checkpoints", "--dataset", "digits"]
    assert "train.checkpoint_dir=/opt/ml/checkpoints" in translate(argv)
    assert "train.checkpoint_dir=/rehearsal/checkpoints" in translate(
        argv, {**SM_ENV, "SAGEMAKER_BASE_DIR": "/rehearsal"}
    )
