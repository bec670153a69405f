"""scikit-learn's bundled 8x8 handwritten digits, split reproducibly into training/validation."""

import numpy as np

from kx.data.dataset import Dataset, from_uint8


def load(validation_fraction: float, seed: int) -> Dataset:
    """The 1,797 digits, shuffled with ``seed``; the last ``validation_fraction`` validates."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    cut = len(order) - int(round(len(order) * validation_fraction))
    train, val = order[:cut], order[cut:]
    return from_uint8(
        "digits",
        (digits.images[train], digits.target[train]),
        (digits.images[val], digits.target[val]),
        [str(d) for d in range(10)],
        scale=16.0,
    )
