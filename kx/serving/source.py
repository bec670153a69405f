"""Find an exported model from what a user names: a run folder, a model folder or an MLflow URI."""

import re
from pathlib import Path
from typing import Any, Optional

from kx.errors import KxError
from kx.serving.contract import SUFFIX
from kx.tracking.mlflow_tracker import resolve_uri

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/", "file:/", "s3://")
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))?/?$")


def is_model_source(source: str) -> bool:
    """Whether ``source`` names a model :func:`model_folder` can find (not, e.g., an endpoint's name)."""
    return Path(source).is_dir() or bool(RUN_ID.match(source)) or source.startswith(MLFLOW_SCHEMES)


def model_folder(source: str, tracking_uri: Optional[str] = None) -> Path:
    """The folder holding the model's contract, for ``source``: a run folder (``outputs/.../``), a model
    folder, an MLflow run id, or an MLflow model URI (``runs:/<id>/model``, ``models:/<name>/<version>``),
    which is downloaded from the tracking store (``tracking_uri``, else kx's default)."""
    path = Path(source)
    if path.is_dir():
        return _contract_folder(path, source)
    if RUN_ID.match(source):
        source = f"runs:/{source}/model"
    if not source.startswith(MLFLOW_SCHEMES):
        raise KxError(
            f"{source!r} is neither a folder nor an MLflow model URI: give a run folder "
            "(outputs/<date>/<time>), its model/ folder, an MLflow run id, runs:/<run id>/model "
            "or models:/<name>/<version>."
        )
    return _contract_folder(_download(source, tracking_uri), source)


def _contract_folder(path: Path, source: str) -> Path:
    for folder in (path, path / "model"):
        if any(folder.glob(f"*{SUFFIX}")):
            return folder
    found = sorted(path.rglob(f"*{SUFFIX}"))  # e.g. inside a downloaded MLflow Model's artifacts/
    if len(found) == 1:
        return found[0].parent
    raise KxError(
        f"{source} holds {'no' if not found else len(found)} kx model contract (*{SUFFIX}); "
        "give a run folder, its model/ folder or one MLflow model. Runs trained before kx "
        "wrote contracts must be retrained."
    )


def _download(uri: str, tracking_uri: Optional[str]) -> Path:
    """Fetch ``uri`` from the store at ``tracking_uri`` (MLflow's global URI is left alone)."""
    import mlflow.artifacts
    from mlflow import MlflowClient

    store = resolve_uri(tracking_uri)
    try:
        location = _artifact_location(MlflowClient(tracking_uri=store, registry_uri=store), uri)
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=location, tracking_uri=store, registry_uri=store)
        )
    except Exception as err:  # noqa: BLE001 - MLflow's errors (unknown run, store unreachable) as one line
        raise KxError(f"Cannot fetch {uri} from MLflow store {store}: {err}") from None


def _artifact_location(client: Any, uri: str) -> str:
    """Where the model that a ``models:/`` URI names is stored, asked of ``client``'s store; other URIs
    as they are. (MLflow's own ``models:/`` resolution asks the global registry URI, whatever the
    download's ``registry_uri`` says.)"""
    if not uri.startswith("models:/"):
        return uri
    match = MODELS_URI.match(uri)
    if match is None:
        raise KxError(
            f"{uri!r}: kx fetches models:/<name>/<version>, models:/<name>@<alias> or models:/<model id>."
        )
    name, version, alias = match.group("name", "version", "alias")
    if name.startswith("m-") and not (version or alias):  # models:/<model id>, a logged model
        return client.get_logged_model(name).artifact_location
    if alias:
        version = client.get_model_version_by_alias(name, alias).version
    return _artifact_location(client, client.get_model_version_download_uri(name, version))
