"""Generated images that a small network learns quickly: class prototypes plus noise."""

from dataclasses import dataclass, field
from typing import List

import numpy as np
from omegaconf import DictConfig

from kx.data.dataset import RawData
from kx.data.registry import DatasetConfig, DatasetSpec, register
from kx.data.validation import at_least, image_size


@dataclass
class SyntheticConfig(DatasetConfig):
    name: str = "synthetic"
    train_samples: int = 2000
    validation_samples: int = 500
    image_size: List[int] = field(default_factory=lambda: [28, 28])
    channels: int = 1
    num_classes: int = 10
    noise: float = 0.35


def _prototypes(rng: np.random.Generator, classes: int, size: List[int], channels: int) -> np.ndarray:
    """One smooth random pattern per class: coarse noise upsampled to the image size."""
    coarse = rng.random((classes, 4, 4, channels))
    rows = np.linspace(0, 3, size[0]).round().astype(int)
    cols = np.linspace(0, 3, size[1]).round().astype(int)
    return coarse[:, rows][:, :, cols]


def generate(
    train_samples: int,
    validation_samples: int,
    image_size: List[int],
    channels: int,
    num_classes: int,
    noise: float,
    seed: int,
) -> RawData:
    """Float images in [0, 1] whose labels are recoverable from the images above ``noise``."""
    rng = np.random.default_rng(seed)
    prototypes = _prototypes(rng, num_classes, list(image_size), channels)

    def sample(n: int):
        labels = rng.integers(0, num_classes, size=n).astype(np.int32)
        images = prototypes[labels] + rng.normal(0.0, noise, size=(n, *prototypes.shape[1:]))
        return np.clip(images, 0.0, 1.0).astype(np.float32), labels

    train, val = sample(train_samples), sample(validation_samples)
    return RawData("synthetic", train, val, [str(c) for c in range(num_classes)], scale=1.0)


def load(cfg: DictConfig, seed: int) -> RawData:
    return generate(
        cfg.train_samples,
        cfg.validation_samples,
        list(cfg.image_size),
        cfg.channels,
        cfg.num_classes,
        cfg.noise,
        seed,
    )


def check(cfg: DictConfig) -> None:
    for key in ("train_samples", "validation_samples", "channels"):
        at_least(cfg, key, 1)
    at_least(cfg, "num_classes", 2)
    at_least(cfg, "noise", 0, "a number >= 0")
    image_size(cfg)


register(DatasetSpec("synthetic", SyntheticConfig, load, shipped=False, check=check))
