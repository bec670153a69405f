"""Each third-party workaround in kx/_compat.py, pinned: a test fails when an upgrade changes what it
works around."""

import importlib.util
import inspect
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from kx import _compat


def test_mxnet_still_reads_exactly_numpy_aliases_this_numpy_lacks():
    """MXNet 1.9.1's own code reads ``np.bool`` & co.; the numpy kx pins no longer has them."""
    spec = importlib.util.find_spec("mxnet")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("mxnet is not installed")
    alias = re.compile(r"\bnp\.(bool|int|float|object|str|complex)\b(?!_)")
    read = {
        m
        for p in Path(spec.submodule_search_locations[0]).rglob("*.py")
        for m in alias.findall(p.read_text())
    }
    assert read and read <= set(_compat.NUMPY_ALIASES)
    if "mxnet" not in sys.modules:  # once imported, kx has restored them in this process
        assert [name for name in _compat.NUMPY_ALIASES if name in np.__dict__] == []


def test_keras_engine_in_use_names_another_engine_only(monkeypatch):
    fake = types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: "jax"))
    monkeypatch.setitem(sys.modules, "keras", fake)
    assert _compat.keras_engine_in_use("torch") == "jax"
    assert _compat.keras_engine_in_use("jax") is None
    monkeypatch.delitem(sys.modules, "keras")
    assert _compat.keras_engine_in_use("torch") is None


def test_mlflow_tracking_uri_holds_meanwhile_and_is_restored(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before, store = mlflow.get_tracking_uri(), f"sqlite:///{tmp_path / 'mlflow.db'}"
    with _compat.mlflow_tracking_uri(store):
        assert mlflow.get_tracking_uri() == store
    assert mlflow.get_tracking_uri() == before


def test_mlflow_model_log_still_takes_no_tracking_uri():
    """When MLflow's ``Model.log`` takes one, kx can pass it and drop ``mlflow_tracking_uri``."""
    models = pytest.importorskip("mlflow.models")
    assert "tracking_uri" not in inspect.signature(models.Model.log).parameters


def test_the_sagemaker_sdk_still_checks_its_config_schema_on_every_validation():
    """When the SDK validates without re-checking its schema, kx can drop
    ``sagemaker_config_schema_checked_once``."""
    pytest.importorskip("sagemaker.core")
    from sagemaker.core.config import config_manager

    source = inspect.getsource(config_manager)
    assert "jsonschema.validate(sagemaker_config, SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA)" in source
    assert "self.validate_sagemaker_config(config_to_check)" in source  # on each default looked up


def test_a_config_checked_once_is_accepted_and_refused_as_jsonschema_does(monkeypatch):
    pytest.importorskip("sagemaker.core")
    import jsonschema
    from sagemaker.core.config.config_manager import SageMakerConfig
    from sagemaker.core.config.config_schema import SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA as schema

    sdks_own = staticmethod(lambda sagemaker_config=None: jsonschema.validate(sagemaker_config, schema))
    monkeypatch.setattr(SageMakerConfig, "validate_sagemaker_config", sdks_own)  # as before any launch
    _compat.sagemaker_config_schema_checked_once()
    assert SageMakerConfig.validate_sagemaker_config.validator.schema is schema
    good = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
    path = "SageMaker.PythonSDK.Modules.TelemetryOptOut"
    assert SageMakerConfig().get_sagemaker_config_value(None, path, sagemaker_config=good) is True
    bad = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": "yes"}}}}
    with pytest.raises(jsonschema.ValidationError) as expected:
        jsonschema.validate(bad, schema)
    with pytest.raises(jsonschema.ValidationError) as refused:
        SageMakerConfig().get_sagemaker_config_value(None, path, sagemaker_config=bad)
    assert str(refused.value) == str(expected.value)


def test_hydra_args_reads_the_command_line_as_hydra_main_does():
    """Hydra's own parser: flags, ``-m`` and overrides, as ``@hydra.main`` will see them."""
    args = _compat.hydra_args(["-m", "--cfg", "job", "train.epochs=1,2", "model=mlp"])
    assert args.multirun and args.cfg == "job"
    assert args.overrides == ["train.epochs=1,2", "model=mlp"]
    assert not _compat.hydra_args(["--help"]).overrides
