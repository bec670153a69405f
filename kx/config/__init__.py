"""kx's config: typed schemas, range checks, and where the config files live."""

from typing import List

from omegaconf import DictConfig

from kx.config.errors import check_closed, describe, unchosen_group
from kx.config.keys import CONFIG_DIR
from kx.config.objective import Objective, objective
from kx.config.schema import register
from kx.config.validate import ConfigError, validate

__all__ = ["CONFIG_DIR", "ConfigError", "Objective", "compose", "objective", "register", "validate"]


def compose(overrides: List[str], with_hydra: bool = False) -> DictConfig:
    """The config train.py composes for ``overrides`` (with Hydra's own node when ``with_hydra``),
    once the dataset modules have stored their schemas (:func:`kx.run_config.compose` sees to it).

    A typo'd or undeclared key, a wrong type or an unknown group option raises one
    :class:`ConfigError` line naming the nearest valid keys or the allowed values."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    register()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(
                config_name="config", overrides=list(overrides), return_hydra_config=with_hydra
            )
    except HydraException as err:
        raise describe(err, overrides, compose) from None
    except AssertionError:  # OmegaConf's answer to a key under a group left unchosen (sweep: null)
        raise unchosen_group(overrides) from None
    check_closed(cfg, overrides, compose)
    return cfg
