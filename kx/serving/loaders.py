"""Load each kx export format on its own, without the training backend where the format allows.

Each loader returns a function from a batch of model input (float32, in the model's layout) to class
probabilities. The TensorFlow SavedModel (TensorFlow and JAX exports) needs TensorFlow only; MXNet's
symbol and params need MXNet only; a ``.keras`` file (the PyTorch export) needs Keras with the engine
that trained it, because Keras 3 reloads a model on the engine it was saved with.
"""

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Callable, Tuple

import numpy as np

from kx import process
from kx._compat import import_mxnet, keras_engine_in_use
from kx.errors import KxError

Predict = Callable[[np.ndarray], np.ndarray]
FORMATS = ("saved_model", "mxnet", "keras")  # tried in this order when no format is asked for


class LoadError(KxError):
    """An exported model cannot be loaded here; the message names the files and what is missing."""


def saved_model(path: Path) -> Predict:
    """A TF Serving SavedModel folder (``<name>/<version>/``) through its ``serve`` signature."""
    _need("tensorflow", "the SavedModel", "tensorflow-cpu")
    process.tensorflow_log_level(3)
    import tensorflow as tf

    served = tf.saved_model.load(str(path))  # the function below keeps it, and its variables, alive
    return lambda x: served.serve(tf.constant(x)).numpy()


def mxnet_symbol(prefix: Path) -> Predict:
    """``<prefix>-symbol.json``, ``-0000.params`` and ``-shapes.json`` as an MXNet ``SymbolBlock``."""
    _need("mxnet", "the MXNet export", "mxnet==1.9.1")
    # One OpenMP thread unless told otherwise: a server predicts small batches, which one thread serves
    # best, and MXNet's spinning OpenMP pool slows them down on a busy machine.
    process.mxnet_threads(default=1)
    mx = import_mxnet()
    shapes = json.loads(Path(f"{prefix}-shapes.json").read_text())
    with warnings.catch_warnings():  # "Cannot decide type for ... data": float32, as exported
        warnings.simplefilter("ignore", UserWarning)
        block = mx.gluon.nn.SymbolBlock.imports(
            f"{prefix}-symbol.json", [entry["name"] for entry in shapes], f"{prefix}-0000.params"
        )
    return lambda x: block(mx.nd.array(x)).asnumpy()


def keras_file(path: Path, engine: str) -> Predict:
    """A ``.keras`` file, on the Keras engine that saved it (``engine``)."""
    _need("keras", "the .keras file", "keras")
    _need(engine, f"the .keras file saved by backend={engine}", engine)
    running = keras_engine_in_use(engine)
    if running:
        raise LoadError(
            f"{path} needs Keras on {engine}, and Keras already runs on "
            f"{running} in this process; serve it from a fresh process."
        )
    process.keras_engine(engine)
    import keras

    model = keras.saving.load_model(path, compile=False)
    return lambda x: np.asarray(model.predict_on_batch(x))


def load(model_dir: Path, files: dict, engine: str, fmt: str = "") -> Tuple[str, Predict]:
    """The first loadable format among ``files`` (format -> relative path), or exactly ``fmt``."""
    wanted = [fmt] if fmt else [f for f in FORMATS if f in files]
    if fmt and fmt not in files:
        raise LoadError(
            f"format={fmt} is not among the exports in {model_dir}: {', '.join(files) or 'none'}."
        )
    for name in wanted:
        path = Path(model_dir) / files[name]
        if name == "saved_model" and not fmt and importlib.util.find_spec("tensorflow") is None:
            continue  # another export of the same model may load without TensorFlow
        try:
            if name == "saved_model":
                return name, saved_model(path)
            if name == "mxnet":
                return name, mxnet_symbol(path)
            return name, keras_file(path, engine)
        except Exception as err:  # noqa: BLE001 - any framework error while loading fails start-up, in one line
            reason = ([""] + [line.strip() for line in str(err).splitlines() if line.strip()])[
                -1
            ]  # not C++'s stack
            raise LoadError(f"Cannot load {path} ({name}): {type(err).__name__}: {reason}") from None
    raise LoadError(
        f"{model_dir} holds no export this environment can load ({', '.join(files) or 'none'}); "
        "the SavedModel needs tensorflow, the MXNet files mxnet, the .keras file Keras."
    )


def _need(module: str, what: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise LoadError(f"Loading {what} needs {module}, which is not installed: pip install {package}")
