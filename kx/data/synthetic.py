"""Generated images that a small network learns quickly: class prototypes plus noise."""

from typing import List

import numpy as np

from kx.data.dataset import Dataset


def _prototypes(rng: np.random.Generator, classes: int, size: List[int], channels: int) -> np.ndarray:
    """One smooth random pattern per class: coarse noise upsampled to the image size."""
    coarse = rng.random((classes, 4, 4, channels))
    rows = np.linspace(0, 3, size[0]).round().astype(int)
    cols = np.linspace(0, 3, size[1]).round().astype(int)
    return coarse[:, rows][:, :, cols]


def load(
    train_samples: int,
    validation_samples: int,
    image_size: List[int],
    channels: int,
    num_classes: int,
    noise: float,
    seed: int,
) -> Dataset:
    """A channels-last dataset whose labels are recoverable from the images above ``noise``."""
    rng = np.random.default_rng(seed)
    prototypes = _prototypes(rng, num_classes, list(image_size), channels)

    def sample(n: int):
        labels = rng.integers(0, num_classes, size=n).astype(np.int32)
        images = prototypes[labels] + rng.normal(0.0, noise, size=(n, *prototypes.shape[1:]))
        return np.clip(images, 0.0, 1.0).astype(np.float32), labels

    x_train, y_train = sample(train_samples)
    x_val, y_val = sample(validation_samples)
    classes = [str(c) for c in range(num_classes)]
    return Dataset("synthetic", x_train, y_train, x_val, y_val, classes, raw_shape=tuple(x_train.shape[1:]))
