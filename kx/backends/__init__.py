"""Training engines behind one interface (:class:`kx.backends.base.Backend`).

Each backend's config file names its implementation in ``backend.impl``; adding a backend is one
module here and one file in ``conf/backend/``.
"""

import importlib
from typing import Optional

from omegaconf import DictConfig

from kx.backends.base import Backend, BackendError
from kx.backends.cluster import Cluster
from kx.backends.monitor import EpochMonitor

__all__ = ["Backend", "BackendError", "Cluster", "EpochMonitor", "create_backend"]


def create_backend(cfg: DictConfig, cluster: Optional[Cluster] = None) -> Backend:
    """Instantiate the backend class named by ``cfg.impl`` (``module:Class``) for ``cluster``'s host."""
    module_name, _, class_name = cfg.impl.partition(":")
    return getattr(importlib.import_module(module_name), class_name)(cfg, cluster)
