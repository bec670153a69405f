"""What a run's params are, and its name: the same rule for local runs, trials and SageMaker jobs.

Params are the hyperparameters only (the ``backend``, ``model``, ``dataset`` and ``train`` keys),
so that MLflow's comparison lines any two runs up column for column. Where things are (folders,
files, URIs, hosts) and how a run is run (``target``,
``tracking``, ``export``, ``sweep``) differ between a laptop and a SageMaker job without changing
the result: they become ``kx.config.<key>`` tags. Runs inside SageMaker jobs: Python 3.8 syntax.
"""

from typing import Any, Dict, Iterable, List, Tuple

HYPER_GROUPS = ("backend", "model", "dataset", "train")
LOCATION_NAMES = ("path", "root", "uri", "python", "bucket", "prefix", "role", "region")
LOCATION_SUFFIXES = ("_dir", "_path", "_uri", "_file")
CODE_NAMES = ("_target_",)  # the class a config names: how a run is built, not what it trains
LOCATION_VALUES = ("/", "./", "../", "~", "s3://", "file:", "http://", "https://", "sqlite:")
CONFIG_TAG = "kx.config."
NAME_LENGTH = 80  # MLflow's runs table shows about this much of a name


def is_hyperparameter(key: str, value: str) -> bool:
    """True for a key that changes what is trained; False for a location or a way of running."""
    group, _, rest = key.partition(".")
    last = key.rsplit(".", 1)[-1]
    if group not in HYPER_GROUPS or not rest:
        return False
    if last in LOCATION_NAMES + CODE_NAMES or last.endswith(LOCATION_SUFFIXES):
        return False
    return not value.startswith(LOCATION_VALUES)


def split(flat: Dict[str, str]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """A flattened config as (params, tags): hyperparameters, and the rest as ``kx.config.*`` tags
    (unset ones left out)."""
    params = {k: v for k, v in flat.items() if is_hyperparameter(k, v)}
    tags = {f"{CONFIG_TAG}{k}": v for k, v in flat.items() if k not in params and v != "None"}
    return params, tags


def head(cfg: Any) -> List[str]:
    """A composed config's backend, model and dataset: what every run's name starts with."""
    return [cfg.backend.name, cfg.model.name, cfg.dataset.name]


def _pair(override: str) -> Tuple[str, str]:
    key, _, value = override.lstrip("+").partition("=")
    return key, value


def distinguishing(overrides: Iterable[str]) -> List[str]:
    """The overrides that set hyperparameters, each as ``<last part of the key>=<value>``."""
    parts = []
    for override in overrides:
        key, value = _pair(override)
        if "=" in override and not key.startswith("~") and is_hyperparameter(key, value):
            parts.append(f"{key.rsplit('.', 1)[-1]}={value}")
    return parts


def run_name(backend: str, model: str, dataset: str, overrides: Iterable[str], target: str = "local") -> str:
    """``mxnet cnn fashion_mnist epochs=20 learning_rate=0.01``: what the run trains, then what its
    command line changed from the defaults (cut to what MLflow's runs table shows), then where it
    ran when not here (`` on sagemaker``), so that a job and its local twin tell apart."""
    where = "" if target == "local" else f" on {target}"
    name = " ".join([backend, model, dataset, *distinguishing(overrides)])
    room = NAME_LENGTH - len(where)
    return (name if len(name) <= room else name[: room - 3].rstrip() + "...") + where
