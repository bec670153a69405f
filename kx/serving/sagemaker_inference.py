"""SageMaker inference handlers for a kx model, shipped as ``code/inference.py`` in its model archive.

Clients send what kx's own server takes (the dataset's own images as ``{"instances": [...]}``, a bare
nested list, or ``application/x-npy``) and get ``{"predictions": [[p0, ...], ...]}``. The handlers
prepare the images with the model's contract, exactly as training did. The TensorFlow Serving
container calls ``input_handler``/``output_handler``; the MXNet container ``model_fn``, ``input_fn``,
``predict_fn`` and ``output_fn``. The archive's ``code/kx/`` holds the few kx modules this imports
(numpy only: the images lack kx's other dependencies); the MXNet image runs Python 3.8.
"""

import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Tuple

import numpy as np

if not __package__:  # loaded as code/inference.py: code/kx/ beside it, however the image imports us
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kx.serving import contract as contracts  # noqa: E402

MODEL_DIR = "/opt/ml/model"


def images(body: bytes, content_type: str) -> np.ndarray:
    """The batch of images in a request body, checked against the contract's shape."""
    if (content_type or "").startswith("application/x-npy"):
        return np.load(io.BytesIO(body), allow_pickle=False)
    doc = json.loads(body)
    if isinstance(doc, dict):
        doc = doc["instances"] if "instances" in doc else doc["inputs"]
    return np.asarray(doc)


def model_input(contract: contracts.Contract, raw: np.ndarray) -> np.ndarray:
    """``raw`` as the model's input, refused (ValueError) unless shaped as the contract says."""
    if raw.ndim != len(contract.raw_shape) + 1 or list(raw.shape[1:]) != contract.raw_shape or not len(raw):
        raise ValueError(
            f"images of shape {raw.shape}; expected (N, {', '.join(map(str, contract.raw_shape))})"
        )
    return contract.preprocess(raw)


# TensorFlow Serving container (tensorflow-inference): pre- and post-processing around TF Serving.
def input_handler(data: Any, context: Any) -> str:
    contract = contracts.load(Path(os.environ.get("SM_MODEL_DIR", MODEL_DIR)))
    x = model_input(contract, images(data.read(), context.request_content_type))
    return json.dumps({"instances": x.tolist()})


def output_handler(response: Any, context: Any) -> Tuple[bytes, str]:
    if response.status_code != 200:
        raise ValueError(response.content.decode("utf-8"))
    return response.content, "application/json"


# MXNet container (mxnet-inference): the model server's four functions.
def model_fn(model_dir: str) -> Any:
    import mxnet as mx

    contract = contracts.load(Path(model_dir))
    prefix = Path(model_dir) / contract.files["mxnet"]
    shapes = json.loads(Path(f"{prefix}-shapes.json").read_text())
    block = mx.gluon.nn.SymbolBlock.imports(
        f"{prefix}-symbol.json", [entry["name"] for entry in shapes], f"{prefix}-0000.params"
    )
    return contract, block


def input_fn(body: bytes, content_type: str) -> np.ndarray:
    return images(body, content_type)


def predict_fn(raw: np.ndarray, model: Any) -> np.ndarray:
    import mxnet as mx

    contract, block = model
    return block(mx.nd.array(model_input(contract, raw))).asnumpy()


def output_fn(prediction: np.ndarray, accept: str) -> Tuple[str, str]:
    return json.dumps({"predictions": prediction.tolist()}), "application/json"
