"""Command-line overrides as kx writes them for trials, and as a config file ``train.py`` accepts.

``render("train.learning_rate", 0.01)`` gives ``train.learning_rate=0.01``; :func:`as_config` turns a
list of overrides into a primary config (``python train.py --config-dir DIR --config-name NAME``).
"""

import re
from typing import Any, Dict, List, Sequence

from omegaconf import OmegaConf

_PLAIN = re.compile(r"^[A-Za-z0-9_./:\-]+$")


def value_text(value: Any) -> str:
    """A value in Hydra's override grammar: strings quoted when the grammar needs it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in ("null", "true", "false"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render(key: str, value: Any) -> str:
    return f"{key}={value_text(value)}"


def as_config(overrides: Sequence[str], primary: str = "config") -> str:
    """A primary config equal to ``primary`` with ``overrides`` applied: group choices (``backend=jax``)
    become ``override /group: option`` defaults, other keys nested values; ``hydra.*`` is left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    defaults: List[Any] = [primary]
    values: Dict[str, Any] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key.startswith("hydra.") or override.is_delete():
            continue
        if "." not in key and override.package is None:
            defaults.append({f"override /{key}": override.value()})
        else:
            values[key] = override.value()
    node = OmegaConf.create({"defaults": [*defaults, "_self_"]})
    for key, value in values.items():
        OmegaConf.update(node, key, value, force_add=True)
    return OmegaConf.to_yaml(node)
