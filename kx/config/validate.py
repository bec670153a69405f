"""Range checks on a composed config, run before any training framework is imported."""

import os
from typing import Any, Callable, List, Optional, Tuple
from urllib.parse import urlsplit

from omegaconf import DictConfig

from kx.errors import KxError


class ConfigError(KxError, ValueError):
    """A config value is outside what kx accepts; the message names the key and the allowed range."""


def _positive(value: Any) -> bool:
    return value > 0


def _non_negative(value: Any) -> bool:
    return value >= 0


def _fraction(value: Any) -> bool:
    return 0 <= value < 1


def _open_fraction(value: Any) -> bool:
    return 0 < value < 1


def _unit(value: Any) -> bool:
    return 0 <= value <= 1


def _finite_positive(value: Any) -> bool:
    return 0 < value < float("inf")


def _seed(value: Any) -> bool:
    return 0 <= value < 2**31  # numpy's range, within SageMaker's signed 32-bit RandomSeed


_RULES: List[Tuple[str, Callable[[Any], bool], str]] = [
    ("backend.num_gpus", _non_negative, "an integer >= 0 (0: CPU only), or null for every visible GPU"),
    ("backend.cpu_devices", _positive, "an integer >= 1 (logical CPU devices to train data-parallel over)"),
    ("train.epochs", _positive, "an integer >= 1"),
    ("train.batch_size", _positive, "an integer >= 1, or null for the automatic choice"),
    ("train.learning_rate", _positive, "a number > 0"),
    ("train.seed", _seed, "an integer from 0 to 2147483647"),
    ("train.momentum", _fraction, "a number in [0, 1)"),
    ("train.warmup_epochs", _non_negative, "a number >= 0"),
    ("train.ema_momentum", _open_fraction, "a number in (0, 1), or null for the automatic choice"),
    ("backend.threads", _positive, "an integer >= 1, or null for the engine's default"),
    ("backend.steps_per_execution", _positive, "an integer >= 1, or null for auto"),
    ("train.early_stopping.patience", _non_negative, "an integer >= 0"),
    ("train.early_stopping.min_delta", _non_negative, "a number >= 0"),
    ("model.dropout", _fraction, "a number in [0, 1)"),
    ("model.bn_momentum", _open_fraction, "a number in (0, 1), or null for the automatic choice"),
    ("model.dense_units", _positive, "an integer >= 1"),
    ("model.dense_layers", _non_negative, "an integer >= 0"),
    ("model.pool_size", _positive, "an integer >= 1"),
    ("dataset.limit", _positive, "an integer >= 1, or null for all samples"),
    ("export.version", _positive, "an integer >= 1"),
    ("target.instance_count", _positive, "an integer >= 1"),
    ("target.volume_size_gb", _positive, "an integer >= 1"),
    ("target.max_runtime_s", _positive, "an integer >= 1"),
    ("target.poll_s", _positive, "a number > 0"),
    ("sweep.budget.trials", _positive, "an integer >= 1"),
    ("sweep.budget.parallel", _positive, "an integer >= 1"),
    ("sweep.budget.max_failure_rate", _unit, "a number in [0, 1]"),
    ("sweep.budget.minutes", _finite_positive, "a number of minutes > 0, or null for no time limit"),
    ("sweep.seed", _seed, "an integer from 0 to 2147483647, or null for train.seed"),
    ("sweep.heartbeat_interval", _positive, "an integer >= 1 (seconds)"),
    ("sweep.grace_period", _positive, "an integer >= 1 (seconds)"),
]


def _select(cfg: DictConfig, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return None
        node = node[part]
    return node


def check_ranges(cfg: DictConfig, prefix: str = "") -> None:
    """Raise :class:`ConfigError` for the first value under ``prefix`` outside its allowed range."""
    for key, is_valid, allowed in _RULES:
        value = _select(cfg, key) if key.startswith(prefix) else None
        if value is not None and not is_valid(value):
            raise ConfigError(f"Invalid config value {key}={value!r}: expected {allowed}.")


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first value outside its allowed range (the dataset's and
    the engine's own checks join these in :func:`kx.run_config.validate`)."""
    check_ranges(cfg)
    for i, layer in enumerate(cfg.model.get("conv_layers", [])):
        for name in ("filters", "kernel_size"):
            if layer[name] < 1:
                raise ConfigError(
                    f"Invalid config value model.conv_layers.{i}.{name}={layer[name]!r}: "
                    "expected an integer >= 1."
                )
    _check_no_credentials(_select(cfg, "tracking.uri"))


def _check_no_credentials(uri: Optional[str]) -> None:
    """A tracking URI with ``user:password@`` (or an HTTP token as its user) would be printed by MLflow
    and saved by Hydra in the run folder and the config artifact: refuse it and say where secrets go."""
    setting, uri = (
        ("tracking.uri", uri) if uri else ("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI"))
    )
    parts = urlsplit(uri or "")
    web = parts.scheme in ("http", "https")
    if parts.password is None and not (web and parts.username):
        return
    host = parts.netloc.rsplit("@", 1)[1]
    bare = parts._replace(netloc=host if web else f"{parts.username}@{host}").geturl()
    where = (
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
        if web
        else "the database driver's own setting (PGPASSWORD for PostgreSQL, MYSQL_PWD for MySQL)"
    )
    raise ConfigError(
        f"{setting}={parts._replace(netloc=f'***@{host}').geturl()!r} carries credentials, which the console, the run folder and "
        f"MLflow would keep: set {setting}={bare} and give them in {where} instead."
    )
