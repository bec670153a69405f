"""The backend registry: each engine module registers the backends it implements here.

``backend=<name>`` picks a registered engine by its name; the config never names code to import.
Adding a backend is one module in ``kx/backends/`` that calls :func:`register` at import, plus one
file in ``conf/backend/``. Runs inside SageMaker jobs (Python 3.8): ``typing`` forms only.
"""

import importlib
import pkgutil
from pathlib import Path
from typing import Dict, List

from kx.backends.base import BackendError

_ENGINES: Dict[str, type] = {}


def register(name: str, engine: type) -> type:
    """Make ``engine`` (a :class:`kx.backends.base.Backend` subclass) the backend called ``name``."""
    _ENGINES[name] = engine
    return engine


def discover() -> List[str]:
    """Import every module of :mod:`kx.backends` (the engine modules register themselves); return
    the registered names."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"kx.backends.{module.name}")
    return sorted(_ENGINES)


def engine(name: str) -> type:
    """The engine registered as ``name``; one line naming the registered ones otherwise."""
    if name not in _ENGINES:
        discover()
    if name not in _ENGINES:
        raise BackendError(
            f"backend={name} is not a registered backend; registered: {', '.join(sorted(_ENGINES))}."
        )
    return _ENGINES[name]
