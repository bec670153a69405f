"""kx's config: typed schemas, range checks, and where the config files live."""

from pathlib import Path

from kx.config.schema import register
from kx.config.validate import ConfigError, validate

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"

__all__ = ["CONFIG_DIR", "ConfigError", "register", "validate"]
