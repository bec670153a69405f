"""The optimizer and its learning-rate schedule, defined once for every backend.

``train.optimizer``, ``train.learning_rate`` (the peak rate), ``train.schedule`` and
``train.warmup_epochs`` describe them; :func:`spec` turns those and the run's steps per epoch into an
:class:`OptimizerSpec`, and each backend translates the spec into its engine's optimizer
(:mod:`kx.backends.keras3`, :mod:`kx.backends.gluon`). :func:`rate` is the schedule itself, written
once over a small ops namespace so that it runs on Python floats (Gluon) and on Keras tensors alike.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict

from omegaconf import DictConfig


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

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class _FloatOps:
    """The three operations :func:`rate` needs, on Python floats (Keras passes ``keras.ops``)."""

    minimum = staticmethod(min)
    maximum = staticmethod(max)
    cos = staticmethod(math.cos)


def spec(train: DictConfig, steps_per_epoch: int) -> OptimizerSpec:
    """The run's optimizer: ``train``'s settings over ``train.epochs`` epochs of ``steps_per_epoch``."""
    return OptimizerSpec(
        kind=str(train.optimizer),
        peak=float(train.learning_rate),
        momentum=float(train.momentum),
        nesterov=bool(train.nesterov),
        schedule=str(train.schedule),
        warmup_steps=int(round(float(train.warmup_epochs) * steps_per_epoch)),
        total_steps=max(1, int(train.epochs) * steps_per_epoch),
    )


def rate(spec: OptimizerSpec, step: Any, ops: Any = _FloatOps) -> Any:
    """The learning rate of 0-based ``step``: a linear warm-up to ``spec.peak`` over
    ``warmup_steps``, then constant, or a cosine decay that reaches 0 after ``total_steps``."""
    warm = ops.minimum(1.0, (step + 1.0) / spec.warmup_steps) if spec.warmup_steps > 0 else 1.0
    if spec.schedule == "constant":
        return spec.peak * warm
    span = max(1, spec.total_steps - spec.warmup_steps)
    progress = ops.minimum(1.0, ops.maximum(0.0, (step - spec.warmup_steps) / span))
    return spec.peak * warm * 0.5 * (1.0 + ops.cos(math.pi * progress))
