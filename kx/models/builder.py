"""Call the model builder the config names through Hydra's ``instantiate``, and check what it returned:
each failure is one line.

``model.builder=mypkg.nets:build`` with ``model.kwargs`` is the node ``{_target_: mypkg.nets.build,
**model.kwargs}``: Hydra imports the target and binds the keyword arguments (as plain lists and
dicts), kx adds the input shape and class count. Hydra reports a target it cannot import as a
multi-line ``InstantiationException`` ("Error locating target ..."), with the ImportError of its own
lookup as ``__cause__`` and the original error under that; kx reads the chain back into one line.
"""

from typing import Any, Callable, Optional, Tuple

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from kx.errors import KxError, one_line


class ModelError(KxError):
    """A model builder cannot be used; the message names the builder and the problem."""


def import_path(path: str, key: str) -> Tuple[str, str]:
    """``(module, function)`` of ``package.module:function`` or ``package.module.function``; the one
    reading of a builder's path (the SageMaker job checks that it ships the module)."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not all(part.isidentifier() for part in f"{module}.{attr}".split(".")):
        raise ModelError(f"model.{key}={path!r} is not an import path like mypkg.nets:build.")
    return module, attr


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
    module, attr = import_path(path, key)
    try:  # a partial: the call below passes the input shape as a tuple, not as a config's list
        builder = instantiate(
            model.get("kwargs") or {},
            _target_=f"{module}.{attr}",
            _partial_=True,
            _convert_="all",
            _recursive_=False,  # the builder's own keyword arguments, passed as they are
        )
    except InstantiationException as err:
        raise ModelError(f"model.{key}={path!r}: {_lookup_problem(err, module, attr)}") from None
    try:
        net = builder(input_shape=tuple(input_shape), num_classes=num_classes)
    except Exception as err:  # noqa: BLE001 - the user's code: any failure is reported as one line
        raise ModelError(f"model.{key}={path!r} raised {type(err).__name__}: {one_line(err)}") from None
    problem = check(net)
    if problem:
        raise ModelError(f"model.{key}={path!r} {problem}")
    return net


def _lookup_problem(err: InstantiationException, module: str, attr: str) -> str:
    """Why Hydra found no function at ``module.attr``, from the errors it chains."""
    if err.__cause__ is None:  # Hydra's own refusal: not a callable, or a target its policy blocks
        refusal = one_line(err).split(" full_key: ")[0]  # (Hydra's key is model.kwargs, not the path)
        return f"Hydra will not call it: {refusal}"
    root: BaseException = err
    while root.__cause__ is not None:
        root = root.__cause__
    if isinstance(root, AttributeError) or _names_attribute(root, module, attr):
        return f"{module} has no function {attr}."
    reason = str(root) if isinstance(root, ImportError) else f"{type(root).__name__}: {root}"
    return f"cannot import {module} ({reason})."


def _names_attribute(err: BaseException, module: str, attr: str) -> bool:
    """Whether ``err`` is Hydra's last try at ``attr`` as a submodule: ``module`` itself imported."""
    if not isinstance(err, ModuleNotFoundError) or not err.name:
        return False
    return err.name.startswith(f"{module}.") and f"{module}.{attr}.".startswith(f"{err.name}.")
