"""A run whose model ended at chance level says so, with what to try: it must not pass as a result.

Chance is what always answering the validation set's most frequent class scores; a model within
:data:`MARGIN` of it has learned next to nothing (too few steps for a small dataset, a rate too
high or too low, a network that cannot see the task).
"""

import math
from typing import Optional

import numpy as np

MARGIN = 0.05


def chance_level(y_val: np.ndarray) -> float:
    """The validation accuracy of always answering the most frequent class."""
    return float(np.bincount(y_val).max() / len(y_val)) if len(y_val) else 0.0


def chance_warning(
    accuracy: float, y_val: np.ndarray, samples: int, batch_size: int, epochs: int
) -> Optional[str]:
    """One line when ``accuracy`` is within :data:`MARGIN` of chance, else None."""
    chance = chance_level(y_val)
    if not len(y_val) or accuracy > chance + MARGIN:
        return None
    steps = epochs * math.ceil(samples / batch_size)
    return (
        f"kx: warning: the model's val_acc {accuracy:.4f} is chance level (the most frequent class "
        f"alone scores {chance:.4f}) after {steps} training steps ({epochs} epochs of {samples} images "
        f"at train.batch_size={batch_size}); try more steps (a smaller train.batch_size, more "
        "train.epochs), another train.learning_rate, or another model."
    )
