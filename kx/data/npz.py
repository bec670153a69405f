"""Any labelled images in numpy files: one ``.npz``, a pair of ``.npy`` files, or kx's channels.

``dataset.path`` is a file, a folder or an ``s3://`` URI. Accepted layouts, first match wins:

- a folder with ``training.npz`` and ``validation.npz`` (directly or in ``training/``,
  ``validation/``: the SageMaker channel layout, arrays ``image`` and ``label``);
- one ``.npz`` (or a folder holding exactly one) with ``x_train``/``y_train`` and
  ``x_test``/``y_test`` (or ``x_val``/``y_val``) as Keras's datasets have them, or a single set
  under ``image``/``label``, ``images``/``labels`` or ``x``/``y``;
- a folder with ``images.npy`` and ``labels.npy``.

A single set is split reproducibly by ``dataset.validation_fraction``. Images are (N, H, W) or
(N, H, W, C): integers 0-255, or floats already in [0, 1].
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from omegaconf import MISSING, DictConfig

from kx.data import channels
from kx.data.dataset import DataError, RawData, Split, check_labels, numbered_classes, split_shuffled
from kx.data.files import UNREADABLE, local_path
from kx.data.registry import DatasetConfig, DatasetSpec, register
from kx.data.validation import fraction, required

PAIRS = (("x_train", "y_train", "x_test", "y_test"), ("x_train", "y_train", "x_val", "y_val"))
SINGLE = (("image", "label"), ("images", "labels"), ("x", "y"))


@dataclass
class NpzConfig(DatasetConfig):
    name: str = "npz"
    path: str = MISSING  # a .npz file, a folder or an s3:// URI (see kx/data/npz.py)
    validation_fraction: float = 0.2  # used when the files hold a single set
    class_names: Optional[List[str]] = None  # None: "0", "1", ... up to the largest label


def load(cfg: DictConfig, seed: int) -> RawData:
    where = f"dataset.path={cfg.path!r}"
    train, val = _splits(local_path(cfg.path), cfg.validation_fraction, seed, where)
    for split in (train, val):
        _check_arrays(split, where)
    if train[0].shape[1:] != val[0].shape[1:]:
        raise DataError(
            f"{where}: training images have shape {train[0].shape[1:]} but validation images "
            f"{val[0].shape[1:]}; both sets need images of one shape."
        )
    names = list(cfg.class_names) if cfg.class_names else numbered_classes(train[1], val[1])
    scale = 1.0 if np.issubdtype(train[0].dtype, np.floating) else 255.0
    raw = RawData(
        "npz", (train[0], train[1].astype(np.int64)), (val[0], val[1].astype(np.int64)), names, scale
    )
    check_labels(raw, where)
    return raw


def _splits(path: Path, validation_fraction: float, seed: int, where: str) -> Tuple[Split, Split]:
    if path.is_dir():
        found = channels.paths(path)
        if found:
            return channels.read_split(found[0])[0], channels.read_split(found[1])[0]
        if (path / "images.npy").is_file() and (path / "labels.npy").is_file():
            arrays = {"images": _load_npy(path / "images.npy"), "labels": _load_npy(path / "labels.npy")}
            return _from_arrays(arrays, validation_fraction, seed, where)
        files = sorted(path.glob("*.npz"))
        if len(files) != 1:
            raise DataError(
                f"{where}: expected training.npz + validation.npz, exactly one .npz file, or "
                f"images.npy + labels.npy in the folder; found {len(files)} .npz files."
            )
        path = files[0]
    return _from_arrays(_load_npz(path), validation_fraction, seed, where)


def _load_npz(path: Path) -> Dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except UNREADABLE as err:
        raise DataError(f"Cannot read {path}: {err}. It is not a readable .npz file.") from None


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except UNREADABLE as err:
        raise DataError(f"Cannot read {path}: {err}. It is not a readable .npy file.") from None


def _from_arrays(
    arrays: Dict[str, np.ndarray], fraction_: float, seed: int, where: str
) -> Tuple[Split, Split]:
    for x_train, y_train, x_val, y_val in PAIRS:
        if {x_train, y_train, x_val, y_val} <= set(arrays):
            return (arrays[x_train], arrays[y_train]), (arrays[x_val], arrays[y_val])
    for images, labels in SINGLE:
        if {images, labels} <= set(arrays):
            return _split((arrays[images], arrays[labels]), fraction_, seed, where)
    raise DataError(
        f"{where}: found arrays {sorted(arrays)}; expected x_train/y_train/x_test/y_test, "
        "image/label, images/labels or x/y."
    )


def _split(data: Split, fraction_: float, seed: int, where: str) -> Tuple[Split, Split]:
    _check_arrays(data, where)
    return split_shuffled(data, fraction_, seed, where)


def _check_arrays(split: Split, where: str) -> None:
    images, labels = split
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels.")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        raise DataError(
            f"{where}: images have shape {images.shape}; expected (N, H, W) or (N, H, W, C) "
            "with C in 1, 3, 4 (channels last)."
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{where}: labels have shape {labels.shape} and dtype {labels.dtype}; "
            "expected integer class indices of shape (N,)."
        )
    if (
        np.issubdtype(images.dtype, np.floating)
        and len(images)
        and (np.isnan(images).any() or images.min() < 0 or images.max() > 1)
    ):
        raise DataError(
            f"{where}: float images must lie in [0, 1] (found {float(np.nanmin(images)):.3g} "
            f"to {float(np.nanmax(images)):.3g}, or NaN); store pixels as uint8 0-255 instead."
        )


def check(cfg: DictConfig) -> None:
    required(cfg, "path", "a .npz file, a folder or an s3:// URI")
    fraction(cfg, "validation_fraction")


register(DatasetSpec("npz", NpzConfig, load, check=check))
