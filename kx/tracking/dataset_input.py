"""The dataset as the MLflow run's input (the run page's "Datasets used"): name, digest, shapes."""

import hashlib
import logging
import time
from typing import Any

import numpy as np

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
        name = f"{data.name}-{context}"
        dataset = mlflow.data.from_numpy(x, targets=y, name=name, digest=numpy_digest(x, y))
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


def numpy_digest(x: np.ndarray, y: np.ndarray, head: int = 10000) -> str:
    """The digest ``mlflow.data.from_numpy`` gives ``(x, y)``: an md5 of the first ``head`` elements'
    pandas hashes and the shapes, truncated to 8 characters. MLflow computes it on ``flatten()``, a copy
    of the whole array made to read its head: a second copy of the training set in memory, and seconds
    where first touching memory is slow. A view's head gives the same digest
    (tests/test_dataset_digest.py pins it to MLflow's own), so runs logged either way share dataset records."""
    import pandas as pd  # MLflow's own dependency: this runs only where MLflow is

    md5 = hashlib.md5(usedforsecurity=False)
    for array in (x, y):
        rows = -(-head // max(1, int(np.prod(array.shape[1:]))))  # the rows that hold the head
        values = np.ravel(array[:rows])[:head]
        try:
            md5.update(pd.util.hash_array(values))
        except TypeError:  # values pandas cannot hash: MLflow digests their count
            md5.update(np.int64(values.size))
        for size in array.shape:
            md5.update(np.int64(size))
    return md5.hexdigest()[:8]
