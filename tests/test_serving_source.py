"""A model named by an MLflow URI is fetched from the store given, leaving MLflow's global URI alone."""

from pathlib import Path

import pytest

from kx.errors import KxError
from kx.serving.contract import SUFFIX
from kx.serving.source import model_folder


@pytest.fixture
def registered(mlflow_store: str, tmp_path: Path, monkeypatch) -> str:
    """A store holding the logged model ``model`` of one run (a contract file and its export),
    registered as ``kxm`` version 1 with the alias ``best``."""
    import mlflow  # here, not at the top: collecting the tests imports no MLflow
    from mlflow import MlflowClient

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # MLflow's default store (./mlflow.db) is not this one
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_store)  # MLflow's registry checks a new version's model there
    client = MlflowClient(tracking_uri=mlflow_store, registry_uri=mlflow_store)
    run = client.create_run(client.create_experiment("kx"))
    model = client.create_logged_model(run.info.experiment_id, "model", source_run_id=run.info.run_id)
    exported = tmp_path / "export"
    exported.mkdir()
    (exported / f"digits{SUFFIX}").write_text("{}")
    client.log_model_artifacts(model.model_id, str(exported))
    client.create_registered_model("kxm")
    client.create_model_version("kxm", f"models:/{model.model_id}", run.info.run_id, model_id=model.model_id)
    client.set_registered_model_alias("kxm", "best", "1")
    mlflow.set_tracking_uri(before)
    return mlflow_store


@pytest.mark.parametrize("uri", ["models:/kxm/1", "models:/kxm@best"])
def test_a_registered_model_comes_from_the_store_given_not_the_global_one(registered, uri):
    import mlflow

    before = mlflow.get_tracking_uri()
    folder = model_folder(uri, tracking_uri=registered)
    assert (folder / f"digits{SUFFIX}").is_file()
    assert mlflow.get_tracking_uri() == before != registered


def test_a_models_uri_kx_cannot_resolve_is_one_clear_error(registered):
    with pytest.raises(KxError, match="models:/<name>/<version>"):
        model_folder("models:/kxm/Production", tracking_uri=registered)
