"""The dataset as the MLflow run's input (the run page's "Datasets used"): name, digest, shapes."""

import logging
import time
from typing import Any

from kx.tracking.mlflow_tracker import MLflowRun

log = logging.getLogger("kx")


def log_dataset(run: MLflowRun, data: Any) -> None:
    """Log ``data``'s training and validation splits as the run's inputs (contexts training, validation).

    ``Dataset._to_mlflow_entity`` is what ``mlflow.log_input`` itself calls; the public function only
    works on the process-global active run, and kx drives runs through ``MlflowClient`` (the use is
    pinned by tests/test_sweeps.py)."""
    if run.failed or run.run_id is None:
        return
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for context, x, y in (("training", data.x_train, data.y_train), ("validation", data.x_val, data.y_val)):
        dataset = mlflow.data.from_numpy(x, targets=y, name=f"{data.name}-{context}")
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", context)]))
    for attempt in range(3):  # trials started together race to create the same dataset record
        try:
            run.client.log_inputs(run.run_id, inputs)
            return
        except Exception as err:  # noqa: BLE001 - the dataset is a nicety; the run goes on without it
            failure = err
            time.sleep(0.5 * (attempt + 1))
    log.warning(
        "MLflow: the dataset is not logged as the run's input (%s: %s)", type(failure).__name__, failure
    )
