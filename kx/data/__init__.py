"""Datasets: load by config, in the image layout the backend asks for.

Each dataset is a module here that registers itself (:mod:`kx.data.registry`) plus a file in
``conf/dataset/``. Importing this package needs numpy only (no omegaconf), so SageMaker's inference
images can run :mod:`kx.serving.contract` from a model archive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kx.data.dataset import DataError, Dataset, RawData, to_layout

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["DataError", "Dataset", "RawData", "load_dataset", "load_raw"]


def load_raw(cfg: DictConfig, seed: int) -> RawData:
    """The dataset's raw arrays: from its SageMaker channels when ``dataset.channel_dir`` is set."""
    from kx.data import channels, registry

    if cfg.get("channel_dir"):
        return channels.read(cfg.channel_dir, cfg.name)
    return registry.spec(cfg.name).load(cfg, seed)


def load_dataset(cfg: DictConfig, layout: str, seed: int) -> Dataset:
    """Load the dataset named by ``cfg.name`` and arrange its images in ``layout``."""
    data = load_raw(cfg, seed).dataset()
    if cfg.limit is not None:
        data.x_train, data.y_train = data.x_train[: cfg.limit], data.y_train[: cfg.limit]
    return to_layout(data, layout)
