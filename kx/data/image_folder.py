"""Image files sorted into one folder per class, resized to one shape.

``dataset.path`` (a folder or an ``s3://`` prefix) holds either ``train/`` and ``validation/`` (or
``val/``), each with one sub-folder per class, or the class folders themselves, split reproducibly by
``dataset.validation_fraction``. Class names are the folder names, sorted. PNG, JPEG, BMP and GIF
files are read with Pillow, converted to grey (``channels: 1``) or RGB (``channels: 3``) and resized
to ``image_size``.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Tuple

import numpy as np
from omegaconf import MISSING, DictConfig

from kx.data.dataset import DataError, RawData, Split, check_labels, split_shuffled
from kx.data.files import local_path
from kx.data.registry import DatasetConfig, DatasetSpec, register
from kx.data.validation import fraction, image_size, invalid, required

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
TRAIN_DIRS, VAL_DIRS = ("train", "training"), ("validation", "val")


@dataclass
class ImageFolderConfig(DatasetConfig):
    name: str = "image_folder"
    path: str = MISSING  # folder (or s3:// prefix) of class folders, or of train/ and validation/
    image_size: List[int] = field(default_factory=lambda: [28, 28])  # [height, width]
    channels: int = 1  # 1: grey, 3: RGB
    validation_fraction: float = 0.2  # when there is no validation/ folder


def load(cfg: DictConfig, seed: int) -> RawData:
    root = local_path(cfg.path)
    where = f"dataset.path={cfg.path!r}"
    train_dir = next((root / d for d in TRAIN_DIRS if (root / d).is_dir()), None)
    val_dir = next((root / d for d in VAL_DIRS if (root / d).is_dir()), None)
    classes = _classes(train_dir or root, where)
    shape = (int(cfg.image_size[0]), int(cfg.image_size[1]), int(cfg.channels))
    if train_dir and val_dir:
        train, val = _read(train_dir, classes, shape, where), _read(val_dir, classes, shape, where)
    else:
        train, val = split_shuffled(_read(root, classes, shape, where), cfg.validation_fraction, seed, where)
    raw = RawData("image_folder", train, val, classes)
    check_labels(raw, where)
    return raw


def _classes(folder: Path, where: str) -> List[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(
            f"{where}: {folder} has {len(classes)} class folder(s); expected one sub-folder per "
            "class, at least two."
        )
    return classes


def _read(folder: Path, classes: List[str], shape: Tuple[int, int, int], where: str) -> Split:
    """Every image under ``folder/<class>/``, resized; one line for empty classes or bad files."""
    from PIL import Image

    images, labels, problems = [], [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in SUFFIXES)
        if not files:
            problems.append(
                f"class folder {folder / name} holds no image file ({', '.join(sorted(SUFFIXES))})"
            )
        for path in files:
            try:
                images.append(_image(path, shape))
                labels.append(label)
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                problems.append(f"cannot read {path}: {err}")  # a bomb: pixels past Pillow's limit
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise DataError(f"{where}: {problems[0]}{more}.")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _image(path: Path, shape: Tuple[int, int, int]) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("L" if shape[2] == 1 else "RGB").resize((shape[1], shape[0]), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)  # (H, W) grey: RawData.dataset adds the channel axis


def check(cfg: DictConfig) -> None:
    required(cfg, "path", "a folder of class folders (or an s3:// prefix)")
    fraction(cfg, "validation_fraction")
    image_size(cfg)
    if cfg.channels not in (1, 3):
        raise invalid("dataset.channels", cfg.channels, "1 (grey) or 3 (RGB)")


register(DatasetSpec("image_folder", ImageFolderConfig, load, check=check))
