"""The model contract: a JSON file beside every export saying what a client needs to use it.

``<model_dir>/<name>-contract.json`` records the input clients send (the dataset's own images: dtype
and shape), the preprocessing training applied (divide by ``scale``, add a channel axis, arrange in
``layout``), the model's input shape, the class names, the export's files, and the backend and its
versions. This module runs inside training jobs, so it imports nothing heavy and runs on Python 3.8.
"""

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from kx.data.dataset import Dataset, prepare_images
from kx.errors import KxError

FORMAT = "kx-model/1"
SUFFIX = "-contract.json"


class ContractError(KxError):
    """A model folder holds no usable contract; the message names the folder and what is expected."""


@dataclass
class Contract:
    """What a served model expects and answers; see the module docstring."""

    name: str
    version: int
    backend: str
    layout: str  # channels_last (N, H, W, C) or channels_first (N, C, H, W): the model's input
    input_shape: List[int]  # one model input, without the batch axis
    raw_dtype: str  # what clients send: the dataset's own images
    raw_shape: List[int]
    scale: float  # model input = raw / scale, in the layout above
    class_names: List[str]
    files: Dict[str, str]  # format -> path relative to the model folder: saved_model, keras, mxnet
    versions: Dict[str, str] = field(default_factory=dict)
    dataset: Dict[str, Any] = field(default_factory=dict)  # the run's dataset config and seed
    format: str = FORMAT

    def preprocess(self, raw: np.ndarray) -> np.ndarray:
        """A batch of the dataset's own images as the model's input, as training prepared them."""
        return prepare_images(raw, self.scale, self.layout)

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / f"{self.name}{SUFFIX}"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


def describe(
    data: Dataset,
    backend: str,
    versions: Dict[str, str],
    exported: List[Path],
    model_dir: Path,
    name: str,
    version: int,
    dataset_cfg: Optional[Dict[str, Any]] = None,
) -> Contract:
    """The contract of a model trained on ``data`` by ``backend`` and exported as ``exported``."""
    files: Dict[str, str] = {}
    for path in exported:
        relative = str(Path(path).relative_to(model_dir))
        if path.name.endswith(".keras"):
            files["keras"] = relative
        elif path.name.endswith("-symbol.json"):
            files["mxnet"] = relative[: -len("-symbol.json")]
        elif path.is_dir():
            files["saved_model"] = relative
    return Contract(
        name=name,
        version=version,
        backend=backend,
        layout=data.layout,
        input_shape=list(data.input_shape),
        raw_dtype=data.raw_dtype,
        raw_shape=list(data.raw_shape),
        scale=float(data.scale),
        class_names=list(data.class_names),
        files=files,
        versions={"python": platform.python_version(), "numpy": np.__version__, **versions},
        dataset=dataset_cfg or {"name": data.name},
    )


def find(model_dir: Path) -> Path:
    """The one contract file in ``model_dir``."""
    found = sorted(Path(model_dir).glob(f"*{SUFFIX}"))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise ContractError(
            f"{model_dir} holds {what} kx model contract (*{SUFFIX}); expected one, as "
            "train.py writes beside every export in the run's model/ folder."
        )
    return found[0]


def load(model_dir: Path) -> Contract:
    """Read the contract in ``model_dir``."""
    path = find(model_dir)
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        return Contract(**data)
    except (ValueError, TypeError) as err:
        raise ContractError(f"{path} is not a kx model contract: {err}") from None


def write(cfg: Any, data: Dataset, backend: Any, model_dir: Path, exported: List[Path]) -> Path:
    """Write the contract of the model ``backend`` just exported (``exported``) for run config ``cfg``."""
    from omegaconf import OmegaConf

    dataset_cfg = {
        "config": OmegaConf.to_container(cfg.dataset, resolve=True, enum_to_str=True),
        "seed": int(cfg.train.seed),
    }
    contract = describe(
        data,
        backend.name,
        backend.versions(),
        exported,
        model_dir,
        cfg.export.name,
        int(cfg.export.version),
        dataset_cfg,
    )
    return contract.save(model_dir)
