"""The Keras translation of :class:`kx.backends.optim.OptimizerSpec`: optimizer and schedule.

Keras is imported by the caller (after ``KERAS_BACKEND`` is set), so the schedule class is made on
first use. It is registered as ``kx>Schedule``, so a checkpoint's ``last.keras`` (which holds the
compiled optimizer) loads back with its schedule and step count.
"""

import functools
from typing import Any, Dict

from kx.backends import optim


@functools.lru_cache(maxsize=None)
def schedule_class(keras: Any) -> type:
    """``keras.optimizers.schedules.LearningRateSchedule`` computing :func:`kx.backends.optim.rate`."""

    @keras.saving.register_keras_serializable(package="kx")
    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, **spec: Any) -> None:
            self.spec = optim.OptimizerSpec(**spec)

        def __call__(self, step: Any) -> Any:
            return optim.rate(self.spec, keras.ops.cast(step, "float32"), keras.ops)

        def get_config(self) -> Dict[str, Any]:
            return self.spec.to_dict()

    return Schedule


def optimizer(keras: Any, spec: optim.OptimizerSpec) -> Any:
    """The Keras optimizer ``spec`` describes, its learning rate following the schedule."""
    rate = schedule_class(keras)(**spec.to_dict())
    if spec.kind == "sgd":
        return keras.optimizers.SGD(rate, momentum=spec.momentum, nesterov=spec.nesterov)
    if spec.kind == "rmsprop":
        return keras.optimizers.RMSprop(rate)
    return keras.optimizers.Adam(rate)
