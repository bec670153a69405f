"""Import a model builder named in the config, call it, and check what it returned: one line each."""

import importlib
from typing import Any, Callable, Optional, Tuple

from omegaconf import DictConfig, OmegaConf

from kx.errors import KxError


class ModelError(KxError):
    """A model builder cannot be used; the message names the builder and the problem."""


def import_builder(path: str, key: str) -> Callable[..., Any]:
    """The function ``package.module:function`` (or ``package.module.function``) names."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ModelError(f"model.{key}={path!r} is not an import path like mypkg.nets:build.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelError(f"model.{key}={path!r}: cannot import {module_name} ({err}).") from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise ModelError(f"model.{key}={path!r}: {module_name} has no function {attr}.")
    return builder


def build(
    model: DictConfig,
    key: str,
    input_shape: Tuple[int, ...],
    num_classes: int,
    check: Callable[[Any], Optional[str]],
) -> Any:
    """Call ``model[key]`` with the input shape, class count and ``model.kwargs``; ``check(net)``
    returns what is wrong with the result, or None."""
    path = model.get(key)
    if not path:
        raise ModelError(f"model={model.name} names no model.{key}, which this backend needs.")
    builder = import_builder(path, key)
    kwargs = OmegaConf.to_container(model.kwargs, resolve=True) if model.get("kwargs") is not None else {}
    try:
        net = builder(input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)
    except Exception as err:  # noqa: BLE001 - the user's code: any failure is reported as one line
        raise ModelError(f"model.{key}={path!r} raised {type(err).__name__}: {err}") from None
    problem = check(net)
    if problem:
        raise ModelError(f"model.{key}={path!r} {problem}")
    return net
