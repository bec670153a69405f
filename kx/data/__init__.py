"""Datasets: load by config, in the image layout the backend asks for.

Importing this package needs numpy only (no omegaconf), so SageMaker's inference images can run
:mod:`kx.serving.contract` from a model archive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kx.data.dataset import DataError, Dataset, to_layout

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["DataError", "Dataset", "load_dataset"]


def load_dataset(cfg: DictConfig, layout: str, seed: int) -> Dataset:
    """Load the dataset named by ``cfg.name`` and arrange its images in ``layout``."""
    if cfg.name == "fashion_mnist":
        from kx.data import fashion_mnist

        data = fashion_mnist.load(cfg.path, cfg.download)
    elif cfg.name == "digits":
        from kx.data import digits

        data = digits.load(cfg.validation_fraction, seed)
    else:
        from kx.data import synthetic

        data = synthetic.load(
            cfg.train_samples,
            cfg.validation_samples,
            list(cfg.image_size),
            cfg.channels,
            cfg.num_classes,
            cfg.noise,
            seed,
        )
    if cfg.limit is not None:
        data.x_train, data.y_train = data.x_train[: cfg.limit], data.y_train[: cfg.limit]
    return to_layout(data, layout)
