"""Load the configured dataset: from its module (:mod:`kx.data.registry`) or its SageMaker channels."""

from omegaconf import DictConfig

from kx.data import channels, registry
from kx.data.dataset import Dataset, RawData, to_layout


def load_raw(cfg: DictConfig, seed: int) -> RawData:
    """The dataset's raw arrays: from its SageMaker channels when ``dataset.channel_dir`` is set."""
    if cfg.get("channel_dir"):
        return channels.read(cfg.channel_dir, cfg.name)
    return registry.spec(cfg.name).load(cfg, seed)


def load_dataset(cfg: DictConfig, layout: str, seed: int) -> Dataset:
    """Load the dataset named by ``cfg.name`` and arrange its images in ``layout``."""
    data = load_raw(cfg, seed).dataset()
    if cfg.limit is not None:
        data.x_train, data.y_train = data.x_train[: cfg.limit], data.y_train[: cfg.limit]
    return to_layout(data, layout)
