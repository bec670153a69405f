"""scikit-learn's bundled 8x8 handwritten digits, split reproducibly into training/validation."""

from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from kx.data.dataset import RawData
from kx.data.registry import DatasetConfig, DatasetSpec, register
from kx.data.validation import fraction


@dataclass
class DigitsConfig(DatasetConfig):
    name: str = "digits"
    validation_fraction: float = 0.2


def load(cfg: DictConfig, seed: int) -> RawData:
    """The 1,797 digits (pixels 0-16), shuffled with ``seed``; the last ``validation_fraction`` validates."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    cut = len(order) - int(round(len(order) * cfg.validation_fraction))
    train, val = order[:cut], order[cut:]
    images = digits.images.astype(np.uint8)
    return RawData("digits", (images[train], digits.target[train]), (images[val], digits.target[val]),
                   [str(d) for d in range(10)], scale=16.0)  # fmt: skip


def check(cfg: DictConfig) -> None:
    fraction(cfg, "validation_fraction")


register(DatasetSpec("digits", DigitsConfig, load, shipped=False, check=check))
