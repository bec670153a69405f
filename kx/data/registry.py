"""The dataset registry: each dataset module registers its schema, loader and checks here.

Adding a dataset is one module in ``kx/data/`` that calls :func:`register` at import, plus one file
in ``conf/dataset/`` that extends its schema (``/schema/dataset@_here_: <name>``). Nothing else
branches on dataset names: the config schema (stored in Hydra's ConfigStore here), range checks,
loading and SageMaker channels all look the name up here.

Runs inside SageMaker jobs (Python 3.8): ``typing`` forms only.
"""

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from kx.data.dataset import DataError, RawData

_INFRASTRUCTURE = {"registry", "dataset", "channels", "files", "validation"}


@dataclass
class DatasetConfig:
    """Fields shared by every dataset; each dataset's schema adds its own."""

    name: str = MISSING
    limit: Optional[int] = None  # keep only the first N training samples (quick runs)
    # A folder with training/ and validation/ npz channels (kx/data/channels.py). Set inside
    # SageMaker jobs, where launch.py ships file-backed datasets this way; it replaces the loader.
    channel_dir: Optional[str] = None


@dataclass(frozen=True)
class DatasetSpec:
    """What kx knows of one dataset.

    ``load(cfg, seed)`` returns the dataset's :class:`RawData`. ``shipped``: launch.py sends its
    arrays to SageMaker jobs as channels (False: the job makes the data itself). ``check(cfg)``
    raises :class:`kx.config.ConfigError` for values its schema's types cannot rule out.
    """

    name: str
    schema: type
    load: Callable[[DictConfig, int], RawData]
    shipped: bool = True
    check: Optional[Callable[[DictConfig], None]] = None


_SPECS: Dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Make ``spec`` known under its name (called by each dataset module at import), and its schema
    the ``schema/dataset`` option that its file in ``conf/dataset/`` extends."""
    _SPECS[spec.name] = spec
    ConfigStore.instance().store(group="schema/dataset", name=spec.name, node=spec.schema)
    return spec


def discover() -> List[DatasetSpec]:
    """Import every dataset module of :mod:`kx.data` (each registers itself); return them all."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name not in _INFRASTRUCTURE:
            importlib.import_module(f"kx.data.{module.name}")
    return list(_SPECS.values())


def check(cfg: DictConfig) -> None:
    """Raise :class:`kx.config.ConfigError` for a value of the dataset ``cfg`` its types allow but
    the dataset does not."""
    checker = spec(cfg.name).check
    if checker is not None:
        checker(cfg)


def spec(name: str) -> DatasetSpec:
    """The registered dataset ``name``; one line naming the known ones otherwise."""
    if name not in _SPECS:
        discover()
    if name not in _SPECS:
        raise DataError(f"dataset={name} is not a registered dataset; known: {', '.join(sorted(_SPECS))}.")
    return _SPECS[name]
