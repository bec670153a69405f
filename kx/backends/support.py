"""The settings each engine can honour, checked on the composed config before any engine loads."""

from omegaconf import DictConfig

from kx.backends.keras_steps import ONE_STEP_PER_CALL
from kx.backends.precision import ENGINES_WITH_BF16
from kx.backends.registry import discover
from kx.config.validate import ConfigError


def check_support(backend: DictConfig) -> None:
    """Raise :class:`ConfigError` for an unregistered engine or a speed setting it cannot honour."""
    registered = discover()
    if backend.name not in registered:
        raise ConfigError(
            f"backend.name={backend.name!r} is not a registered backend; choose backend=<name> "
            f"with one of {', '.join(registered)}."
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
