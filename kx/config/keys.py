"""The keys a composed config accepts, and the nearest ones to a key it does not.

One definition for every place that checks a user's key: Hydra overrides on the command line
(:mod:`kx.config.errors`) and SageMaker hyperparameters (:mod:`kx.sagemaker.script_mode`).
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import dataclasses
import difflib
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"
CONFIG_GROUPS = ("backend", "model", "dataset", "target", "sweep")
PLAIN = re.compile(r"^[A-Za-z_/][\w.:/+@-]*$")  # a string Hydra reads unquoted...
_TYPED = re.compile(r"^(null|true|false|inf|nan)$", re.IGNORECASE)  # ...unless it reads as another type


def hydra_value(value: Any) -> str:
    """``value`` in Hydra's override grammar, read back as the same value: strings quoted when Hydra
    would read them otherwise (as a number, a bool, null), lists and dicts element by element."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)  # inf and nan as Hydra spells them
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if PLAIN.match(text) and not _TYPED.match(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def group_options(group: str) -> List[str]:
    """The options of config group ``group``: its files in ``conf/<group>/``."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def groups_help() -> str:
    """``backend: jax, mxnet, tensorflow, torch`` per line: the groups a user chooses from."""
    return "\n".join(f"{group}: {', '.join(group_options(group))}" for group in CONFIG_GROUPS)


def flatten(tree: Any, prefix: str = "") -> Dict[str, str]:
    """``{"train": {"epochs": 2}}`` -> ``{"train.epochs": "2"}``; lists are indexed by position."""
    if isinstance(tree, dict):
        items: Iterable = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return {prefix: str(tree)}
    flat: Dict[str, str] = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_keys(cfg: DictConfig, prefix: str = "") -> List[str]:
    """Every dotted key of ``cfg`` (containers, leaves and list items), e.g. ``train.early_stopping.patience``."""
    keys: List[str] = []
    items = range(len(cfg)) if isinstance(cfg, ListConfig) else list(cfg)
    for key in items:
        path = f"{prefix}{key}"
        keys.append(path)
        node = cfg._get_node(key)
        if isinstance(node, (DictConfig, ListConfig)) and not node._is_none():
            keys += config_keys(node, f"{path}.")
    return keys


def user_keys(cfg: DictConfig) -> List[str]:
    """The keys a user may set: groups and config paths, Hydra's own settings left out."""
    return list(CONFIG_GROUPS) + [k for k in config_keys(cfg) if not k.startswith("hydra")]


def nearest_keys(key: str, cfg: DictConfig, n: int = 3) -> List[str]:
    """The valid keys closest in spelling to ``key`` (at most ``n``, best first): its siblings
    first (``train.epochz`` -> ``train.epochs``), else any key."""
    known = user_keys(cfg)
    parent, _, leaf = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == parent}
    close = difflib.get_close_matches(leaf, list(siblings), n=n, cutoff=0.6)
    return [siblings[k] for k in close] or difflib.get_close_matches(key, known, n=n, cutoff=0.5)


def _either(words: List[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def unknown_key_message(key: str, cfg: DictConfig) -> str:
    """``Unknown config key train.epochz; did you mean train.epochs?`` (or where to find the keys)."""
    close = nearest_keys(key, cfg)
    hint = (
        f"did you mean {_either(close)}?"
        if close
        else "`python train.py --cfg job` lists the keys (e.g. train.learning_rate)."
    )
    return f"Unknown config key {key}; {hint}"


def undeclared_key(key: str, cfg: DictConfig) -> Optional[str]:
    """The first part of dotted ``key`` that its schema does not declare (``+key=value`` adds it to
    the composed config; a schema is closed to additions), or None when every part is declared.
    Keys under a declared ``Dict[str, ...]`` field (e.g. ``target.tags.team``) are open."""
    node = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig):
            return None
        schema = OmegaConf.get_type(node)
        if not dataclasses.is_dataclass(schema):
            return None  # a plain mapping: any key
        if part not in {f.name for f in dataclasses.fields(schema)}:
            return ".".join(parts[: i + 1])
        node = node._get_node(part)
    return None
