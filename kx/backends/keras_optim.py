"""The Keras translation of :class:`kx.backends.optim.OptimizerSpec`: optimizer and schedule.

The schedule is Keras's own ``CosineDecay`` (its warm-up, and ``alpha=1`` for a constant rate), set
to the spec's parameters, so that a saved ``.keras`` file (the export, a checkpoint) loads in plain
Keras; it computes :func:`kx.backends.optim.rate` (tests/test_speed.py compares them).
"""

import contextlib
from typing import Any, Iterator

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
    average = {"use_ema": True, "ema_momentum": spec.ema} if spec.ema is not None else {}
    if spec.kind == "sgd":
        return keras.optimizers.SGD(rate, momentum=spec.momentum, nesterov=spec.nesterov, **average)
    if spec.kind == "rmsprop":
        return keras.optimizers.RMSprop(rate, **average)
    return keras.optimizers.Adam(rate, **average)


@contextlib.contextmanager
def averaged(model: Any) -> Iterator[None]:
    """``model`` holding its optimizer's moving average of the weights (when it keeps one) inside the
    block, its own weights again after it: what validation, the best epoch and the export see,
    while training goes on from the weights it reached."""
    optimizer = getattr(model, "optimizer", None)
    if not getattr(optimizer, "use_ema", False) or not optimizer.built:
        yield
        return
    weights = model.trainable_variables
    reached = [v.numpy() for v in weights]
    optimizer.finalize_variable_values(weights)  # Keras's public swap: each weight gets its average
    for variable, value in zip(weights, [v.numpy() for v in weights]):
        variable.assign(value)  # its own copy: JAX would share the average's buffer, then donate it
    try:
        yield
    finally:
        for variable, value in zip(weights, reached):
            variable.assign(value)
