"""The dataset a run logs as its MLflow input: MLflow's own digest, without a copy of the data."""

import tracemalloc

import numpy as np
import pytest

from kx.tracking.dataset_input import numpy_digest

mlflow_data = pytest.importorskip("mlflow.data")

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (600, 28, 28), dtype=np.uint8)
LABELS = RNG.integers(0, 10, 600).astype(np.int32)


@pytest.mark.parametrize(
    "x, y",
    [
        (IMAGES, LABELS),  # a dataset as stored
        (IMAGES[..., None].astype(np.float32) / 255, LABELS),  # as the model gets it, channels-last
        (IMAGES[:3], LABELS[:3]),  # fewer elements than the digest reads
        (IMAGES[:, ::2, 1:], LABELS[::-1]),  # non-contiguous views
        (IMAGES.transpose(0, 2, 1), LABELS.astype(np.int64)),
        (np.array([[1, 2], [3]] * 3, dtype=object), LABELS[:6]),  # values pandas cannot hash
    ],
)
def test_the_digest_is_mlflows_own(x, y):
    assert numpy_digest(x, y) == mlflow_data.from_numpy(x, targets=y).digest


def test_logging_the_dataset_does_not_copy_it():
    """MLflow's ``from_numpy`` alone copies the whole array to compute its digest; given kx's digest,
    the dataset entity a run logs costs a small fraction of the data's size."""
    x = np.zeros((2000, 28, 28, 1), np.float32)  # 6.3 MB
    mlflow_data.from_numpy(x[:1], targets=LABELS[:1])._to_mlflow_entity()  # MLflow's lazy imports, first
    tracemalloc.start()
    try:
        mlflow_data.from_numpy(x, targets=LABELS, digest=numpy_digest(x, LABELS))._to_mlflow_entity()
        kx_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        mlflow_data.from_numpy(x, targets=LABELS)._to_mlflow_entity()
        mlflow_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert mlflow_peak > x.nbytes > 10 * kx_peak
