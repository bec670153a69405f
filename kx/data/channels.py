"""A dataset as SageMaker channels: ``training/training.npz`` and ``validation/validation.npz``.

Each file holds ``image`` (N, H, W[, C]) and ``label`` (N,) arrays, the layout of the reference
Keras-on-SageMaker workflow, plus kx's ``class_names`` and ``scale`` so that the job reads back the
very dataset launch.py wrote, whichever dataset it came from.
"""

from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from kx.data.dataset import DataError, RawData, Split, numbered_classes
from kx.data.files import UNREADABLE

NAMES = ("training", "validation")


def write(raw: RawData, dest: Path) -> Dict[str, Path]:
    """Write ``raw`` as the two channels under ``dest``; return channel name -> file."""
    paths = {}
    for channel, (images, labels) in zip(NAMES, (raw.train, raw.val)):
        folder = dest / channel
        folder.mkdir(parents=True, exist_ok=True)
        paths[channel] = folder / f"{channel}.npz"
        label_type = np.uint8 if len(raw.class_names) <= 256 else np.int32
        np.savez(
            paths[channel],
            image=images,
            label=labels.astype(label_type),
            class_names=np.array(raw.class_names),
            scale=np.float64(raw.scale),
        )
    return paths


def paths(folder: Path) -> Optional[Tuple[Path, Path]]:
    """The training/validation npz files in ``folder`` or in its ``training/``, ``validation/``."""
    for train, val in (
        (folder / "training.npz", folder / "validation.npz"),
        (folder / "training" / "training.npz", folder / "validation" / "validation.npz"),
    ):
        if train.is_file() and val.is_file():
            return train, val
    return None


def read_split(path: Path) -> Tuple[Split, Dict[str, np.ndarray]]:
    """``(images, labels)`` of one channel file, and its other arrays."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"image", "label"} - set(npz.files)
            if missing:
                raise DataError(
                    f"{path} lacks the array(s) {sorted(missing)}; a kx channel file holds "
                    "'image' (N, H, W[, C]) and 'label' (N,)."
                )
            arrays = {name: npz[name] for name in npz.files}
    except UNREADABLE as err:
        raise DataError(f"Cannot read {path}: {err}. The file is corrupt or truncated.") from None
    images, labels = arrays.pop("image"), arrays.pop("label")
    if len(images) != len(labels):
        raise DataError(
            f"{path}: {len(images)} images but {len(labels)} labels; they do not belong together."
        )
    return (images, labels), arrays


def read(folder: str, name: str, class_names: Optional[list] = None, scale: float = 255.0) -> RawData:
    """The dataset ``name`` from its channels in ``folder`` (as written by :func:`write`)."""
    found = paths(Path(folder))
    if found is None:
        raise DataError(
            f"dataset.channel_dir={folder!r} holds no channels: expected training/training.npz and "
            "validation/validation.npz (or both files directly in it)."
        )
    (train, meta), (val, _) = read_split(found[0]), read_split(found[1])
    if "class_names" in meta:
        class_names = [str(c) for c in meta["class_names"]]
    if class_names is None:
        class_names = numbered_classes(train[1], val[1])
    return RawData(name, train, val, class_names, float(meta.get("scale", scale)))
