"""Datasets: load by config, in the image layout the backend asks for.

Each dataset is a module here that registers itself (:mod:`kx.data.registry`) plus a file in
``conf/dataset/``; :mod:`kx.data.loading` loads the configured one. Importing this package needs
numpy only (no omegaconf), so SageMaker's inference images can run :mod:`kx.serving.contract` from a
model archive.
"""

from kx.data.dataset import DataError, Dataset, RawData

__all__ = ["DataError", "Dataset", "RawData"]
