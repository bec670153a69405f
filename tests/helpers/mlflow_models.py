"""Read back the MLflow Model a kx run logged."""

from pathlib import Path
from typing import Set


def model_files(tracking_uri: str, run_id: str) -> Set[str]:
    """The export's files inside the run's MLflow Model ``runs:/<run id>/model`` (its ``artifacts/model/``)."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)  # MLflow 3 finds a run's logged model through the global URI only
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run_id}/model"))
    finally:
        mlflow.set_tracking_uri(previous)
    assert (local / "MLmodel").is_file()
    return {p.name for p in (local / "artifacts" / "model").iterdir()}
