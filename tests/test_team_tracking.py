"""A team's tracking server: `mlflow server` with a PostgreSQL backend store and an S3 artifact store
(moto's), used by train.py through `tracking.uri=http://...` as it uses the default SQLite file."""

import pytest

from tests.helpers.mlflow_models import model_files
from tests.helpers.moto import BUCKET, REGION
from tests.helpers.sweeps import TINY

pytestmark = pytest.mark.slow


def test_runs_sweeps_models_and_the_registry_on_a_team_server(run_train, aws):
    from mlflow.tracking import MlflowClient

    from tests.helpers.mlflow_server import mlflow_server
    from tests.helpers.postgres import postgres_server

    s3 = {
        "MLFLOW_S3_ENDPOINT_URL": aws["endpoint"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    with postgres_server() as database, mlflow_server(database, f"s3://{BUCKET}/mlflow", s3) as uri:
        run_train(*TINY, "hydra.run.dir=run", f"tracking.uri={uri}", "tracking.register_as=tiny")
        run_train(
            "-m",
            "sweep=quick",
            *TINY,
            "sweep.budget.trials=2",
            "hydra.sweep.dir=sweep",
            f"tracking.uri={uri}",
        )
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("kx")
        found = client.search_runs([experiment.experiment_id])
        parents = [r for r in found if r.data.tags.get("kx.sweep") == "true"]
        assert len(found) == 4 and len(parents) == 1 and parents[0].info.status == "FINISHED"
        children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
        assert sorted(c.data.tags["kx.trial.state"] for c in children) == ["COMPLETE", "COMPLETE"]
        (single,) = [
            r
            for r in found
            if r.info.run_name
            and "mlflow.parentRunId" not in r.data.tags
            and r is not parents[0]
            and r.data.tags.get("kx.sweep") != "true"
        ]
        assert single.info.status == "FINISHED" and "best_val_acc" in single.data.metrics
        assert "model-contract.json" in model_files(uri, single.info.run_id)
        (version,) = client.search_model_versions("name = 'tiny'")
        assert version.run_id == single.info.run_id and version.status == "READY"
        assert parents[0].data.metrics["trials_complete"] == 2
    stored = aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="mlflow/").get("Contents", [])
    assert any(o["Key"].endswith("model-contract.json") for o in stored)  # the artifacts are in S3
