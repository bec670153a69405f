"""Batch-norm momentum: the moving statistics used for validation and the exported model.

With Keras's default momentum 0.99 the moving mean and variance average over ~100 steps and start
from (0, 1): a run of a few hundred steps validates with statistics that have not caught up and
reports a broken model while its training accuracy is fine. ``model.bn_momentum: null`` (auto)
keeps 0.99 for runs of 1,000 steps or more, where ``1 - 10 / steps`` reaches it (the full-length
result is unchanged), and lowers it for shorter runs, so the statistics average over about a tenth
of the run.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import logging
import math

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("kx")

FULL_MOMENTUM = 0.99  # Keras's default, and what long runs use
FLOOR = 0.9


def auto_momentum(steps: int) -> float:
    """``1 - 10 / steps`` between 0.9 and 0.99: the statistics' time constant is ~a tenth of the run."""
    return round(min(FULL_MOMENTUM, max(FLOOR, 1 - 10 / max(steps, 1))), 4)


def momentum(model: DictConfig) -> float:
    """The momentum a backend builds with: ``model.bn_momentum`` once resolved, else the long-run value."""
    value = model.get("bn_momentum")
    return FULL_MOMENTUM if value is None else float(value)


def resolve(model: DictConfig, samples: int, batch_size: int, epochs: int) -> DictConfig:
    """``model`` with ``bn_momentum`` set: the configured value, or :func:`auto_momentum` for the
    run's training steps (``epochs`` x ``ceil(samples / batch_size)``) when it is null."""
    if "bn_momentum" not in model or model.bn_momentum is not None or not model.batch_norm:
        return model  # (a builder's model sets its own, see kx/models/)
    steps = epochs * math.ceil(samples / batch_size)
    momentum = auto_momentum(steps)
    if momentum != FULL_MOMENTUM:
        log.info("batch-norm momentum %.4f for this %d-step run (model.bn_momentum sets it)", momentum, steps)
    resolved = OmegaConf.merge(model, {"bn_momentum": momentum})
    assert isinstance(resolved, DictConfig)
    return resolved
