"""scikit-learn's bundled 8x8 handwritten digits, split reproducibly into training/validation."""

from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from kx.data.dataset import RawData, split_shuffled
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
    train, val = split_shuffled(
        (digits.images.astype(np.uint8), digits.target), cfg.validation_fraction, seed, "digits"
    )
    return RawData("digits", train, val, [str(d) for d in range(10)], scale=16.0)


def check(cfg: DictConfig) -> None:
    fraction(cfg, "validation_fraction")


register(DatasetSpec("digits", DigitsConfig, load, shipped=False, check=check))
