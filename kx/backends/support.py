"""The settings each engine can honour, checked on the composed config before any engine loads."""

import importlib
from typing import Optional

from omegaconf import DictConfig

from kx.backends.base import Backend
from kx.backends.keras_steps import ONE_STEP_PER_CALL
from kx.backends.precision import ENGINES_WITH_BF16
from kx.config.keys import group_options
from kx.config.validate import ConfigError


def engine_class(backend: DictConfig) -> type:
    """The :class:`Backend` class ``backend._target_`` names, which trains ``backend.name``. Only a
    class of kx.backends is imported: no config value makes kx import other code."""
    target, options = str(backend.get("_target_")), ", ".join(group_options("backend"))
    engine = _kx_class(target)
    if not (isinstance(engine, type) and issubclass(engine, Backend)):
        raise ConfigError(
            f"backend._target_={target!r} is not a kx engine class; choose backend=<name> with one of {options}."
        )
    if backend.name not in engine.engines:
        raise ConfigError(
            f"backend.name={backend.name!r} is not a backend {engine.__name__} trains; choose "
            f"backend=<name> with one of {options}."
        )
    return engine


def _kx_class(target: str) -> Optional[type]:
    """What ``target`` (``module.Class``) names, when its module is kx.backends'."""
    module, _, name = target.rpartition(".")
    if not module.startswith(f"{__package__}."):
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def check_support(backend: DictConfig, train: DictConfig) -> None:
    """Raise :class:`ConfigError` for an unknown engine or a setting it cannot honour."""
    engine = engine_class(backend)
    if train.get("ema") == "on" and not engine.averages_weights:
        raise ConfigError(
            f"train.ema=on is not supported by backend={backend.name}: it keeps no moving average "
            "of the weights; use off, or auto (on where the engine keeps one)."
        )
    averaged = train.get("ema") != "off" and engine.averages_weights
    if train.get("ema_momentum") is not None and not averaged:
        raise ConfigError(
            f"train.ema_momentum={train.ema_momentum} has no effect: backend={backend.name} with "
            f"train.ema={train.ema} keeps no moving average of the weights; leave it null."
        )
    if backend.get("precision") == "bfloat16" and backend.name not in ENGINES_WITH_BF16:
        raise ConfigError(
            f"backend.precision=bfloat16 is not supported by backend={backend.name}: use float32, or auto."
        )
    if backend.get("input_pipeline") == "tf_data" and backend.name != "tensorflow":
        raise ConfigError(
            f"backend.input_pipeline=tf_data is not supported by backend={backend.name}: "
            "tf.data feeds TensorFlow; use arrays, or auto."
        )
    if backend.get("steps_per_execution") not in (None, 1) and backend.name in ONE_STEP_PER_CALL:
        raise ConfigError(
            f"backend.steps_per_execution={backend.steps_per_execution} is not supported by "
            f"backend={backend.name}: it runs one step per call; leave it null or 1."
        )
    if backend.get("threads") is not None and backend.name == "jax":
        raise ConfigError(
            f"backend.threads={backend.threads} is not supported by backend=jax: XLA sizes "
            "its own thread pool; leave it null."
        )
