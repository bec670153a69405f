"""The Keras translation of :class:`kx.backends.optim.OptimizerSpec`: optimizer and schedule.

The schedule is Keras's own ``CosineDecay`` (its warm-up, and ``alpha=1`` for a constant rate), set
to the spec's parameters, so that a saved ``.keras`` file (the export, a checkpoint) loads in plain
Keras; it computes :func:`kx.backends.optim.rate` (tests/test_speed.py compares them).
"""

from typing import Any

from kx.backends import optim


def schedule(keras: Any, spec: optim.OptimizerSpec) -> Any:
    """``spec``'s warm-up and decay as a ``keras.optimizers.schedules.CosineDecay``."""
    alpha = 1.0 if spec.schedule == "constant" else 0.0  # alpha=1: the rate stays at the peak
    decay_steps = max(1, spec.total_steps - spec.warmup_steps)
    if spec.warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(spec.peak, decay_steps, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps, alpha=alpha, warmup_target=spec.peak, warmup_steps=spec.warmup_steps
    )


def optimizer(keras: Any, spec: optim.OptimizerSpec) -> Any:
    """The Keras optimizer ``spec`` describes, its learning rate following the schedule."""
    rate = schedule(keras, spec)
    if spec.kind == "sgd":
        return keras.optimizers.SGD(rate, momentum=spec.momentum, nesterov=spec.nesterov)
    if spec.kind == "rmsprop":
        return keras.optimizers.RMSprop(rate)
    return keras.optimizers.Adam(rate)
