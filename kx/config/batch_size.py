"""``train.batch_size: null`` (the default): the batch that fits the training set.

The default recipe's batch of :data:`LARGE` suits tens of thousands of images; on a small dataset it
leaves a handful of optimizer steps per epoch and the model stays at chance. The automatic size keeps
:data:`LARGE` while an epoch has at least :data:`MIN_STEPS` steps, and otherwise halves it until it
does, never below :data:`SMALLEST`. Powers of two: the batch still splits over 2, 4 or 8 devices or
hosts. Every backend, and every SageMaker job (train.py inside it), resolves it here.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import logging
from typing import Tuple

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("kx")

LARGE = 256
SMALLEST = 16
MIN_STEPS = 32


def candidates() -> Tuple[int, ...]:
    """Every size the automatic choice can give, largest first."""
    sizes, size = [], LARGE
    while size >= SMALLEST:
        sizes.append(size)
        size //= 2
    return tuple(sizes)


def auto_batch_size(samples: int) -> int:
    """The largest of :func:`candidates` that gives an epoch of ``samples`` images
    :data:`MIN_STEPS` full steps, else :data:`SMALLEST`."""
    return next((size for size in candidates() if samples // size >= MIN_STEPS), SMALLEST)


def resolve(train: DictConfig, samples: int) -> DictConfig:
    """``train`` with ``batch_size`` set: the configured value, or :func:`auto_batch_size` when null;
    one line says so when the automatic size is not :data:`LARGE`."""
    if train.batch_size is not None:
        return train
    size = auto_batch_size(samples)
    if size != LARGE:
        log.info(
            "train.batch_size %d: %d training images make %d steps per epoch (at %d: %d; "
            "train.batch_size=N sets it)",
            size,
            samples,
            samples // size,
            LARGE,
            samples // LARGE,
        )
    resolved = OmegaConf.merge(train, {"batch_size": size})
    assert isinstance(resolved, DictConfig)
    return resolved
