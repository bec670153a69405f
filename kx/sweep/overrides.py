"""Command-line overrides as kx writes them for trials, and as a config file ``train.py`` accepts.

``render("train.learning_rate", 0.01)`` gives ``train.learning_rate=0.01``; :func:`as_config` turns a
list of overrides into a primary config (``python train.py --config-dir DIR --config-name NAME``).
"""

from typing import Any, Dict, List, Sequence

from omegaconf import OmegaConf

from kx.config.keys import hydra_value


def render(key: str, value: Any) -> str:
    """``key=value`` with the value in Hydra's override grammar (:func:`kx.config.keys.hydra_value`)."""
    return f"{key}={hydra_value(value)}"


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
