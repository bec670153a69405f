"""Each run's model as an MLflow Model: a pyfunc over kx's own loader, with signature and input example.

``mlflow.pyfunc.load_model("runs:/<run id>/model")`` and ``mlflow models serve -m runs:/<run id>/model``
then take the dataset's own images (as kx's server does) and answer class probabilities, for every
backend's export. The model carries the export folder (contract included) and kx's code, so it loads
wherever its pip requirements are installed.
"""

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator, List, Optional

import mlflow.pyfunc
import numpy as np

from kx._compat import mlflow_tracking_uri
from kx.serving import contract as contracts
from kx.serving.model import load

log = logging.getLogger("kx")
KX_DIR = Path(__file__).resolve().parents[1]
PIP_NAMES = {"tensorflow": "tensorflow", "keras": "keras", "jax": "jax", "torch": "torch", "mxnet": "mxnet"}


# MLflow advises type hints on ``predict`` when the class is defined (under a filter of its own, so
# only recording the warning silences it): kx logs an explicit signature instead.
with warnings.catch_warnings(record=True):

    class KxPyfunc(mlflow.pyfunc.PythonModel):
        """Loads the kx export in the artifact ``kx_model``; predicts probabilities for raw images."""

        def load_context(self, context: Any) -> None:

            self.model = load(Path(context.artifacts["kx_model"]))

        def predict(self, context, model_input, params=None):  # no hints: MLflow would read them as a schema
            return self.model.probabilities(np.asarray(model_input))


def signature(contract: contracts.Contract) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    images = TensorSpec(np.dtype(contract.raw_dtype), (-1, *contract.raw_shape))
    probabilities = TensorSpec(np.dtype("float32"), (-1, len(contract.class_names)))
    return ModelSignature(inputs=Schema([images]), outputs=Schema([probabilities]))


def requirements(contract: contracts.Contract) -> List[str]:
    """What loading the model needs: MLflow, numpy, kx's config libraries and the export's framework."""
    pins = [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        "hydra-core>=1.3,<1.4",
        "omegaconf>=2.3,<2.4",
    ]
    return pins + [f"{PIP_NAMES[k]}=={v}" for k, v in sorted(contract.versions.items()) if k in PIP_NAMES]


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Keep ``logger``'s warnings off the console (MLflow warns that a Python object is pickled: kx
    pickles its own small loader class, by reference)."""
    previous = logging.getLogger(logger).level
    logging.getLogger(logger).setLevel(logging.ERROR)
    try:
        yield
    finally:
        logging.getLogger(logger).setLevel(previous)


def log_model(run: Any, model_dir: Path, example: np.ndarray, register_as: Optional[str]) -> Optional[str]:
    """Log ``model_dir`` as the MLflow Model ``model`` of ``run`` (a :class:`kx.tracking.MLflowRun`),
    registered as ``register_as`` when given; return its URI, or None (with a warning) when MLflow fails."""
    contract = contracts.load(model_dir)
    # The logged model is created here so that it belongs to the run's experiment, where runs:/<id>/model looks.
    try:
        with warnings.catch_warnings(), _quiet("mlflow.pyfunc"), mlflow_tracking_uri(run.uri):
            warnings.simplefilter("ignore", UserWarning)  # MLflow's advice on type hints and cloudpickle
            model = run.client.create_logged_model(
                run.experiment_id, "model", run.run_id, tags={"kx.backend": contract.backend}
            )
            info = mlflow.models.Model.log(
                artifact_path=None,
                name="model",
                flavor=mlflow.pyfunc,
                run_id=run.run_id,
                model_id=model.model_id,
                python_model=KxPyfunc(),
                artifacts={"kx_model": str(model_dir)},
                code_paths=[str(KX_DIR)],
                signature=signature(contract),
                input_example=example,
                pip_requirements=requirements(contract),
                registered_model_name=register_as,
            )
    except Exception as err:  # noqa: BLE001 - tracking never loses a run: the model is in model/ already
        log.warning(
            "MLflow could not log the model (%s: %s); it stays in %s.", type(err).__name__, err, model_dir
        )
        return None
    if register_as:
        log.info("model registered in MLflow as %s (version %s)", register_as, info.registered_model_version)
    return info.model_uri
