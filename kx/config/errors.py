"""Hydra's composition errors as kx's one line: the bad key or value and what is allowed.

Hydra reports an unknown key, a wrong type or an unknown group option in 5 to 13 lines and
suggests ``+key=value``, which would add the typo to the config. kx names the key or value, the
nearest valid keys or the allowed options, and the fix. Runs inside SageMaker jobs: Python 3.8.
"""

import re
from typing import Callable, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError
from omegaconf.nodes import BooleanNode, EnumNode, FloatNode, IntegerNode, StringNode

from kx.config.keys import CONFIG_GROUPS, group_options, undeclared_key, unknown_key_message
from kx.config.validate import ConfigError
from kx.errors import one_line

Composer = Callable[[List[str]], DictConfig]


def _dotted(full_key: str) -> str:
    """``model.conv_layers[0].filters`` -> ``model.conv_layers.0.filters`` (override syntax)."""
    return re.sub(r"\[(\d+)\]", r".\1", str(full_key))


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def group_overrides(overrides: Sequence[str]) -> List[str]:
    """The overrides that choose a group option (``backend=mxnet``), which the defaults list applies."""
    return [o for o in overrides if _key(o) in CONFIG_GROUPS and "=" in o]


def unknown_option(group: str, option: str) -> ConfigError:
    """``Unknown option backend=caffe: choose one of jax, mxnet, tensorflow, torch.``"""
    return ConfigError(f"Unknown option {group}={option}: choose one of {', '.join(group_options(group))}.")


def check_options(group: str, options: Sequence[str]) -> None:
    """Raise :func:`unknown_option` for the first of ``options`` that ``group`` lacks (a group sweep)."""
    for option in options:
        if group in CONFIG_GROUPS and option not in group_options(group) + ["null"]:
            raise unknown_option(group, option)


def expected(node: object) -> Optional[str]:
    """What a schema field accepts, in words (``an integer``, ``one of sgd, adam, rmsprop``)."""
    if isinstance(node, EnumNode):
        allowed = "one of " + ", ".join(m.name for m in node.enum_type)
    else:
        words = {
            IntegerNode: "an integer",
            FloatNode: "a number",
            BooleanNode: "true or false",
            StringNode: "a string",
        }
        allowed = next((w for kind, w in words.items() if isinstance(node, kind)), None)
    if allowed and node._is_optional():  # type: ignore[attr-defined]
        allowed += ", or null"
    return allowed


def _wrong_value(err: ValidationError, overrides: Sequence[str], compose: Composer) -> ConfigError:
    key = _dotted(err.full_key)
    value = next((o.split("=", 1)[1] for o in overrides if _key(o) == key), err.value)
    node = _select_node(compose(group_overrides(overrides)), key)
    allowed = expected(node)
    reason = f"expected {allowed}" if allowed else str(err.msg).splitlines()[0]
    return ConfigError(f"Invalid config value {key}={value}: {reason}.")


def _select_node(cfg: DictConfig, key: str) -> object:
    parent, _, leaf = key.rpartition(".")
    container = OmegaConf.select(cfg, parent) if parent else cfg
    return container._get_node(leaf) if container is not None else None  # type: ignore[union-attr]


def describe(err: Exception, overrides: Sequence[str], compose: Composer) -> ConfigError:
    """``err``, raised by Hydra while composing ``overrides``, as one :class:`ConfigError` line.

    ``compose`` composes a config (for the nearest keys and the allowed values)."""
    from hydra.errors import MissingConfigException, OverrideParseException

    cause = err.__cause__
    if isinstance(err, MissingConfigException) and err.options:
        group, _, option = str(err.missing_cfg_file).rpartition("/")
        return unknown_option(group, option)
    if isinstance(err, OverrideParseException):
        return ConfigError(
            f"Cannot parse the override {err.override}: {str(err).splitlines()[0]} "
            "(Hydra's override grammar: key=value, group=option)."
        )
    if isinstance(cause, ValidationError):
        return _wrong_value(cause, overrides, compose)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
        key = next(
            (_key(o) for o in overrides if _key(o).startswith(_dotted(cause.full_key))),
            _dotted(cause.full_key),
        )
        return ConfigError(unknown_key_message(key, compose(group_overrides(overrides))))
    return ConfigError(one_line(err))


def unchosen_group(overrides: Sequence[str]) -> ConfigError:
    """``sweep.storage=...`` without ``sweep=<name>``: a key of a group no option was chosen for."""
    chosen = {_key(o) for o in group_overrides(overrides)}
    for override in overrides:
        group = _key(override).split(".", 1)[0]
        if "." in _key(override) and group in CONFIG_GROUPS and group not in chosen:
            return ConfigError(
                f"{override}: choose a {group} first with {group}=<name> "
                f"(one of {', '.join(group_options(group))})."
            )
    return ConfigError(f"Cannot compose the config from {' '.join(overrides)}.")


def check_closed(cfg: DictConfig, overrides: Sequence[str], compose: Composer) -> None:
    """Refuse ``+key=value`` for a key no schema declares: the schemas are closed to additions."""
    for override in overrides:
        key = _key(override)
        if not override.startswith("+") or key.startswith("hydra.") or key in CONFIG_GROUPS:
            continue
        if undeclared_key(key, cfg):
            raise ConfigError(unknown_key_message(key, compose(group_overrides(overrides))))
