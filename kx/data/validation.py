"""Range checks for dataset configs, each raising the one-line ConfigError kx prints."""

from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from kx.config.validate import ConfigError


def invalid(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"Invalid config value {key}={value!r}: expected {allowed}.")


def at_least(cfg: DictConfig, key: str, low: float, allowed: Optional[str] = None) -> None:
    if cfg[key] < low:
        raise invalid(f"dataset.{key}", cfg[key], allowed or f"an integer >= {low}")


def fraction(cfg: DictConfig, key: str) -> None:
    if not 0 < cfg[key] < 1:
        raise invalid(f"dataset.{key}", cfg[key], "a number in (0, 1)")


def image_size(cfg: DictConfig, key: str = "image_size") -> None:
    size = list(cfg[key])
    if len(size) != 2 or min(size) < 1:
        raise invalid(f"dataset.{key}", size, "[height, width] with both >= 1")


def required(cfg: DictConfig, key: str, what: str) -> None:
    """One line for a mandatory field left unset (``???`` in the dataset's YAML)."""
    if OmegaConf.is_missing(cfg, key):
        raise ConfigError(f"dataset.{key} is not set: dataset={cfg.name} reads {what}; set dataset.{key}=...")
