"""Read back the MLflow Model a kx run logged."""

from pathlib import Path
from typing import Set


def model_files(tracking_uri: str, run_id: str) -> Set[str]:
    """The export's files inside the MLflow Model ``model`` that run ``run_id`` logged (its ``artifacts/model/``).

    The model is looked up with a client rather than through ``runs:/``, which MLflow resolves with the
    process-wide tracking URI (and setting that would leak into every later subprocess's environment).
    """
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_run(run_id).info.experiment_id
    logged = client.search_logged_models([experiment], filter_string="name = 'model'")
    (model,) = [m for m in logged if m.source_run_id == run_id]
    local = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location, tracking_uri=tracking_uri)
    )
    assert (local / "MLmodel").is_file()
    return {p.name for p in (local / "artifacts" / "model").iterdir()}
