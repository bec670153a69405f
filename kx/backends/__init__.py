"""Training engines behind one interface (:class:`kx.backends.base.Backend`).

Each engine module registers the backends it implements (:mod:`kx.backends.registry`); adding a
backend is one module here and one file in ``conf/backend/``.
"""

from typing import Optional

from omegaconf import DictConfig

from kx.backends.base import Backend, BackendError
from kx.backends.cluster import Cluster
from kx.backends.monitor import EpochMonitor
from kx.backends.registry import engine

__all__ = ["Backend", "BackendError", "Cluster", "EpochMonitor", "create_backend"]


def create_backend(cfg: DictConfig, cluster: Optional[Cluster] = None) -> Backend:
    """The engine registered as ``cfg.name``, for ``cluster``'s host."""
    return engine(cfg.name)(cfg, cluster)
