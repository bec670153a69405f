"""Training engines behind one interface (:class:`kx.backends.base.Backend`).

Adding a backend is one module here and one file in ``conf/backend/`` whose ``_target_`` names its
class (:mod:`kx.backends.support` refuses a target outside this package).
"""

from typing import Optional

from omegaconf import DictConfig

from kx.backends.base import Backend, BackendError
from kx.backends.cluster import Cluster
from kx.backends.monitor import EpochMonitor
from kx.backends.support import engine_class

__all__ = ["Backend", "BackendError", "Cluster", "EpochMonitor", "create_backend"]


def create_backend(cfg: DictConfig, cluster: Optional[Cluster] = None) -> Backend:
    """The engine class ``cfg._target_`` names (``conf/backend/<name>.yaml``), for ``cluster``'s host.

    Built by kx's own lookup rather than ``hydra.utils.instantiate``, which would import any target
    and wrap the engine's one-line errors (:class:`BackendError`) in its own."""
    return engine_class(cfg)(cfg, cluster)
