"""Third-party workarounds kx relies on, gathered so that an upgrade that breaks one fails one test
(tests/test_compat.py pins each).

MXNet 1.9.1 is the final release and predates numpy 1.24, yet its Python code still reads the
aliases numpy 1.24 removed (``np.bool``, ``np.int``, ``np.float``, ``np.object``, ``np.str``,
``np.complex``). :func:`import_mxnet` restores exactly those that are missing, pointing at the
builtins they always meant, right before MXNet is first imported, and only when MXNet is needed.

Runs inside SageMaker's MXNet image (Python 3.8).
"""

import builtins
import contextlib
import sys
from typing import Any, Callable, Iterator, Optional, Sequence

from kx import process
from kx.errors import KxError

NUMPY_ALIASES = ("bool", "int", "float", "object", "str", "complex")


def import_mxnet() -> Any:
    """Import MXNet after restoring the numpy aliases it needs (see the module docstring).

    MXNet sizes its OpenMP pool once, at import (:func:`kx.process.mxnet_threads`;
    benchmarks/backends.py measures the cost of its own default).
    """
    import numpy as np

    process.mxnet_threads()
    for alias in NUMPY_ALIASES:
        if alias not in np.__dict__:
            setattr(np, alias, getattr(builtins, alias))
    try:
        import mxnet
    except ImportError as err:
        raise KxError(
            f"backend=mxnet needs Apache MXNet 1.9.1, which is not installed ({err}). Install it "
            'with `pip install -e ".[mxnet]"`.'
        ) from None
    return mxnet


@contextlib.contextmanager
def mlflow_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's global tracking URI is ``uri`` meanwhile, then what it was: for the MLflow calls that
    take no URI of their own (``mlflow.models.Model.log``, and the registry's lookup of a new
    version's logged model), which read only the global one. MLflow's private ``_use_tracking_uri``
    does exactly this."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        yield


def keras_engine_in_use(engine: str) -> Optional[str]:
    """The engine Keras already runs on in this process when it is not ``engine`` (Keras picks its
    engine once per process, at import), else None."""
    loaded = sys.modules.get("keras")
    running = loaded.backend.backend() if loaded is not None else None
    return running if running != engine else None


def sagemaker_config_schema_checked_once() -> None:
    """The SageMaker SDK validates its defaults config on every default it looks up (about a dozen
    per request it builds), through ``jsonschema.validate``, which first checks the fixed schema
    itself against its metaschema: nearly all of the cost. ``SageMakerConfig.validate_sagemaker_config``
    becomes the same validation by one validator made for that schema, checked once: the same
    errors for the same configs."""
    from sagemaker.core.config.config_manager import SageMakerConfig

    if not hasattr(SageMakerConfig.validate_sagemaker_config, "validator"):
        SageMakerConfig.validate_sagemaker_config = staticmethod(_sagemaker_config_validation())


def _sagemaker_config_validation() -> Callable[[Optional[dict]], None]:
    """``jsonschema.validate(config, SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA)`` with its schema check done."""
    from jsonschema import exceptions
    from jsonschema.validators import validator_for
    from sagemaker.core.config.config_schema import SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA as schema

    checker = validator_for(schema)
    checker.check_schema(schema)
    validator = checker(schema)

    def validate(sagemaker_config: Optional[dict] = None) -> None:
        error = exceptions.best_match(validator.iter_errors(sagemaker_config))
        if error is not None:
            raise error

    validate.validator = validator  # type: ignore[attr-defined]
    return validate


def hydra_args(argv: Sequence[str]) -> Any:
    """``argv`` parsed as ``@hydra.main`` parses it (flags, ``-m``, overrides), so that kx's pre-run
    check reads the command line exactly as Hydra will. Hydra's parser is private
    (``hydra._internal.utils.get_args_parser``); no public function parses its command line."""
    from hydra._internal.utils import get_args_parser

    return get_args_parser().parse_args(list(argv))
