"""The optimizer and its learning-rate schedule, defined once for every backend.

``train.optimizer``, ``train.learning_rate`` (the peak rate), ``train.schedule`` and
``train.warmup_epochs`` describe them; :func:`spec` turns those and the run's steps per epoch into an
:class:`OptimizerSpec`, and each backend translates the spec into its engine's optimizer
(:mod:`kx.backends.keras_optim`, :mod:`kx.backends.gluon`). :func:`rate` is the schedule itself:
Gluon calls it every step; Keras runs its own ``CosineDecay`` with the same parameters (so that an
exported ``.keras`` file loads without kx), and tests/test_speed.py holds the two to the same rates.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import math
from dataclasses import dataclass
from typing import Optional

from omegaconf import DictConfig

from kx.backends.bn_momentum import auto_momentum


@dataclass(frozen=True)
class OptimizerSpec:
    """What every backend builds: the optimizer, its peak rate and the schedule over ``total_steps``."""

    kind: str  # sgd | adam | rmsprop
    peak: float
    momentum: float  # sgd only
    nesterov: bool  # sgd only
    schedule: str  # constant | cosine
    warmup_steps: int
    total_steps: int
    ema: Optional[float] = None  # the weights' moving-average momentum; None: no average


def spec(train: DictConfig, steps_per_epoch: int, averages_weights: bool) -> OptimizerSpec:
    """The run's optimizer: ``train``'s settings over ``train.epochs`` epochs of ``steps_per_epoch``,
    with a moving average of the weights where the engine ``averages_weights`` and ``train.ema``
    is not off."""
    total_steps = max(1, int(train.epochs) * steps_per_epoch)
    return OptimizerSpec(
        kind=str(train.optimizer),
        peak=float(train.learning_rate),
        momentum=float(train.momentum),
        nesterov=bool(train.nesterov),
        schedule=str(train.schedule),
        warmup_steps=int(round(float(train.warmup_epochs) * steps_per_epoch)),
        total_steps=total_steps,
        ema=ema_momentum(train, total_steps) if averages_weights else None,
    )


def ema_momentum(train: DictConfig, total_steps: int) -> Optional[float]:
    """The momentum of the weights' moving average on an engine that keeps one (``train.ema`` auto
    or on), or None when it is off. Its default is the batch-norm statistics' (a tenth of a run
    under 1,000 steps, 0.99 from there), so the averaged weights and the statistics they are
    validated with follow the same recent steps."""
    if str(train.get("ema", "off")) == "off":
        return None
    value = train.get("ema_momentum")
    return auto_momentum(total_steps) if value is None else float(value)


def rate(spec: OptimizerSpec, step: int) -> float:
    """The learning rate of 0-based ``step``: a linear warm-up from 0 to ``spec.peak`` over
    ``warmup_steps``, then constant, or a cosine decay that reaches 0 after ``total_steps``."""
    if step < spec.warmup_steps:
        return spec.peak * step / spec.warmup_steps
    if spec.schedule == "constant":
        return spec.peak
    span = max(1, spec.total_steps - spec.warmup_steps)
    return spec.peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - spec.warmup_steps) / span)))
