"""kx's config: typed schemas, range checks, and where the config files live."""

from pathlib import Path
from typing import List

from omegaconf import DictConfig

from kx.config.objective import Objective, objective
from kx.config.schema import register
from kx.config.validate import ConfigError, validate

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"

__all__ = ["CONFIG_DIR", "ConfigError", "Objective", "compose", "objective", "register", "validate"]


def compose(overrides: List[str], with_hydra: bool = False) -> DictConfig:
    """The config train.py composes for ``overrides`` (with Hydra's own node when ``with_hydra``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=with_hydra)
