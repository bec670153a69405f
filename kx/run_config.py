"""A run's whole config: kx.config's schemas and checks joined by each dataset's and engine's own.

kx.config knows no dataset or engine by name; the data layer stores each dataset's schema in Hydra's
ConfigStore as its module is imported, and the data and backend layers check their own values. Every
entry point composes and checks through here. Runs inside SageMaker jobs: Python 3.8 syntax.
"""

from typing import List

from omegaconf import DictConfig

from kx import config
from kx.backends.support import check_support
from kx.data import registry as datasets


def register() -> None:
    """Store every schema in Hydra's ConfigStore: kx.config's, and each dataset module's."""
    config.register()
    datasets.discover()


def compose(overrides: List[str], with_hydra: bool = False) -> DictConfig:
    """The config train.py composes for ``overrides`` (:func:`kx.config.compose`, every schema stored)."""
    register()
    return config.compose(overrides, with_hydra)


def validate(cfg: DictConfig) -> None:
    """Raise :class:`kx.config.ConfigError` for the first value outside what kx, the engine or the
    dataset accepts."""
    config.validate(cfg)
    check_support(cfg.backend, cfg.train)
    datasets.check(cfg.dataset)
