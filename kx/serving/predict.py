"""``launch.py predict``: random validation images sent to a model, true against predicted labels."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from kx.data.loading import load_dataset
from kx.errors import KxError
from kx.reporting.plots import prediction_grid
from kx.sagemaker.settings import aws_session
from kx.serving.contract import Contract
from kx.serving.deploy import endpoint_contract, invoke, sagemaker_target
from kx.serving.model import load
from kx.serving.source import is_model_source, model_folder

Classify = Callable[[np.ndarray], np.ndarray]  # the dataset's own images -> probabilities


@dataclass
class Endpoint:
    """A running kx server (local, or any with kx's routes) reached over HTTP."""

    url: str
    timeout: float = 30.0

    def _call(self, path: str, body: Optional[bytes] = None) -> dict:
        request = urllib.request.Request(
            f"{self.url.rstrip('/')}{path}", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as err:
            raise KxError(
                f"{self.url}{path} answered {err.code}: {err.read().decode(errors='replace')}"
            ) from None
        except (urllib.error.URLError, OSError) as err:
            raise KxError(
                f"Cannot reach {self.url}{path} ({getattr(err, 'reason', err)}); is the server running?"
            ) from None

    def contract(self) -> Contract:
        name = self._call("/ping")["model"]
        return Contract(**self._call(f"/v1/models/{name}/metadata")["contract"])

    def classify(self, images: np.ndarray) -> np.ndarray:
        body = json.dumps({"instances": images.tolist()}).encode()
        return np.asarray(self._call("/invocations", body)["predictions"])


def connect(target: str, tracking_uri: Optional[str]) -> Tuple[Contract, Classify, str]:
    """The contract and a classify function for ``target`` (an http(s) endpoint or any model source)."""
    if target.startswith(("http://", "https://")):
        endpoint = Endpoint(target)
        return endpoint.contract(), endpoint.classify, target

    if not is_model_source(target):
        return sagemaker_endpoint(target)
    model = load(model_folder(target, tracking_uri))
    return model.contract, model.probabilities, f"{model.contract.backend} {model.format} loaded here"


def sagemaker_endpoint(name: str) -> Tuple[Contract, Classify, str]:
    """A SageMaker endpoint deployed by ``launch.py deploy`` (region: target.region, as for deploy)."""
    session = aws_session(sagemaker_target([]).region)
    contract = endpoint_contract(session, name)
    return (
        contract,
        lambda images: np.asarray(invoke(session, name, images)["predictions"]),
        f"SageMaker endpoint {name}",
    )


def validation_images(contract: Contract, samples: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """``samples`` random validation images (the dataset's own) and labels, from the model's run config."""
    from omegaconf import OmegaConf

    config = contract.dataset.get("config")
    if not config:
        raise KxError(
            f"model {contract.name}'s contract names no dataset config; it cannot pick validation images."
        )
    data = load_dataset(OmegaConf.create(config), "channels_last", contract.dataset.get("seed", 0))
    chosen = np.random.default_rng(seed).choice(
        len(data.y_val), size=min(samples, len(data.y_val)), replace=False
    )
    return data.raw_images(data.x_val[chosen]), data.y_val[chosen]


def grid_path(target: str) -> Path:
    """Where the grid goes by default: into a run folder given as the target, else under outputs/
    (never the working folder, which is usually the user's repository)."""
    folder = Path(target)
    if (folder / "config.yaml").is_file():
        return folder / "predictions.png"
    return Path("outputs") / "predictions.png"


def run(
    target: str, samples: int, seed: int, out: Optional[Path] = None, tracking_uri: Optional[str] = None
) -> int:
    """Classify ``samples`` validation images with ``target``; print true vs predicted; save a PNG grid."""

    out = out or grid_path(target)
    out.parent.mkdir(parents=True, exist_ok=True)

    contract, classify, where = connect(target, tracking_uri)
    images, labels = validation_images(contract, samples, seed)
    probabilities = classify(images)
    predicted = probabilities.argmax(axis=1)
    names = contract.class_names
    print(f"{len(images)} validation images of {contract.dataset['config']['name']} -> {where}")
    for i, (true, pred) in enumerate(zip(labels, predicted)):
        mark = "ok" if true == pred else "WRONG"
        print(f"{i}: true={names[true]} predicted={names[pred]} p={probabilities[i, pred]:.3f} {mark}")
    print(
        f"{int((labels == predicted).sum())}/{len(images)} correct; grid: {prediction_grid(images, labels, predicted, names, out)}"
    )
    return 0
