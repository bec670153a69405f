"""Fashion-MNIST from IDX files (gzipped or not) or from SageMaker-style npz channels.

Lookup order: ``dataset.path``; the Debian package's folder; Keras's download cache; Keras's own
download. The first place that holds the data wins; an explicit ``dataset.path`` that holds none
is an error rather than a silent fallback.
"""

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import numpy as np
from omegaconf import DictConfig

from kx.data import channels
from kx.data.dataset import DataError, RawData
from kx.data.registry import DatasetConfig, DatasetSpec, register

CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "val_images": "t10k-images-idx3-ubyte",
    "val_labels": "t10k-labels-idx1-ubyte",
}
_IDX_MAGIC = {0x00000801: 1, 0x00000803: 3}  # unsigned-byte labels (1 dim) / images (3 dims)

Arrays = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


@dataclass
class FashionMnistConfig(DatasetConfig):
    name: str = "fashion_mnist"
    path: Optional[str] = None  # folder with IDX files or training.npz/validation.npz
    download: bool = True  # fall back to Keras's download when no local copy is found


def keras_cache_dir() -> Path:
    """Where ``keras.datasets.fashion_mnist.load_data()`` keeps its downloads."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "fashion-mnist"


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes with ``ndim`` dimensions, checking header and length."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataError(
            f"Cannot read IDX file {path}: {err}. The file is corrupt or truncated; "
            "reinstall it (apt-get install --reinstall dataset-fashion-mnist) "
            "or point dataset.path at a good copy."
        ) from None
    magic = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
    if _IDX_MAGIC.get(magic) != ndim:
        expected = next(m for m, n in _IDX_MAGIC.items() if n == ndim)
        found = "no header" if magic is None else f"magic number 0x{magic:08x}"
        raise DataError(
            f"{path} is not an IDX file of {ndim}-dimensional unsigned bytes: "
            f"{found}, expected 0x{expected:08x}."
        )
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header]) if len(data) >= header else ()
    payload = len(data) - header
    if len(dims) != ndim or payload != int(np.prod(dims)):
        raise DataError(
            f"{path} is truncated or corrupt: its header announces shape {tuple(dims)} "
            f"({int(np.prod(dims)) if dims else '?'} bytes of data) but "
            f"{max(payload, 0)} bytes follow."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find(folder: Path, name: str) -> Optional[Path]:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _pair(images: np.ndarray, labels: np.ndarray, where: Path) -> Tuple[np.ndarray, np.ndarray]:
    if len(images) != len(labels):
        raise DataError(
            f"{where}: {len(images)} images but {len(labels)} labels; the files do not belong together."
        )
    return images, labels


def _load_idx(folder: Path) -> Optional[Arrays]:
    paths = {key: _find(folder, name) for key, name in IDX_FILES.items()}
    if not all(paths.values()):
        return None
    arrays = {key: read_idx(path, 3 if key.endswith("images") else 1) for key, path in paths.items()}
    return (
        _pair(arrays["train_images"], arrays["train_labels"], paths["train_images"]),
        _pair(arrays["val_images"], arrays["val_labels"], paths["val_images"]),
    )


def _load_folder(folder: Path) -> Optional[Arrays]:
    found = channels.paths(folder)
    if found:
        return channels.read_split(found[0])[0], channels.read_split(found[1])[0]
    return _load_idx(folder)


def _download() -> Arrays:
    import keras  # the backend is already chosen when data is loaded

    return keras.datasets.fashion_mnist.load_data()


def load_arrays(path: Optional[str], download: bool, search: Iterable[Path] = ()) -> Arrays:
    """The raw uint8 ((train images, labels), (validation images, labels)), found as described above."""
    if path is not None:
        arrays = _load_folder(Path(path))
        if arrays is None:
            raise DataError(
                f"dataset.path={path!r} holds no Fashion-MNIST data: expected the four IDX files "
                f"({', '.join(IDX_FILES.values())}, optionally .gz) or training.npz and "
                "validation.npz (directly or in training/ and validation/ subfolders)."
            )
        return arrays
    places: List[Path] = list(search) or [DEBIAN_DIR, keras_cache_dir()]
    for folder in places:
        arrays = _load_folder(folder)
        if arrays is not None:
            return arrays
    looked = ", ".join(str(p) for p in places)
    if not download:
        raise DataError(
            f"Fashion-MNIST not found (looked in {looked}; download disabled). "
            "Install it with `apt-get install dataset-fashion-mnist`, or set "
            "dataset.path=/folder/with/the/files."
        )
    try:
        return _download()
    except Exception as err:  # noqa: BLE001 - any download failure gets the same advice
        raise DataError(
            f"Fashion-MNIST not found (looked in {looked}) and the download failed "
            f"({type(err).__name__}: {err}). Install it with `apt-get install "
            "dataset-fashion-mnist`, or set dataset.path=/folder/with/the/files."
        ) from None


def load(cfg: DictConfig, seed: int = 0) -> RawData:
    """Fashion-MNIST's uint8 images and labels, found as described above."""
    return RawData("fashion_mnist", *load_arrays(cfg.path, cfg.download), CLASS_NAMES)


register(DatasetSpec("fashion_mnist", FashionMnistConfig, load))
