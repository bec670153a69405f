"""Training engines behind one interface (:class:`kx.backends.base.Backend`).

Adding a backend is one module here and one file in ``conf/backend/`` whose ``_target_`` names its
class (:mod:`kx.backends.support` refuses a target outside this package).
"""

from typing import Optional

from hydra.utils import instantiate
from omegaconf import DictConfig

from kx.backends.base import Backend, BackendError
from kx.backends.cluster import Cluster
from kx.backends.monitor import EpochMonitor

__all__ = ["Backend", "BackendError", "Cluster", "EpochMonitor", "create_backend"]


def create_backend(cfg: DictConfig, cluster: Optional[Cluster] = None) -> Backend:
    """The engine class ``cfg._target_`` names (``conf/backend/<name>.yaml``), for ``cluster``'s host."""
    return instantiate({"_target_": cfg._target_}, cfg, cluster)
