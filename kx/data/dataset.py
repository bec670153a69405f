"""The in-memory dataset every backend trains on, and the raw arrays it is made from."""

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from kx.errors import KxError

Split = Tuple[np.ndarray, np.ndarray]  # (images, labels)


class DataError(KxError):
    """Data could not be found or read; the message names the file or places and how to fix it."""


@dataclass
class Dataset:
    """Images as float32 in [0, 1] and integer labels, in the layout the backend asked for."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: List[str]
    layout: str = "channels_last"

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class RawData:
    """A dataset as stored: images (N, H, W) or (N, H, W, C) whose pixels divided by ``scale`` lie
    in [0, 1], integer labels in [0, len(class_names)), channels-last."""

    name: str
    train: Split
    val: Split
    class_names: List[str]
    scale: float = 255.0

    def dataset(self) -> Dataset:
        """The channels-last float32 :class:`Dataset` (a channel axis added to (N, H, W) images)."""
        return from_uint8(self.name, self.train, self.val, self.class_names, self.scale)


def from_uint8(name: str, train: Split, val: Split, class_names: List[str], scale: float = 255.0) -> Dataset:
    """Build a channels-last :class:`Dataset` from raw (images, labels) pairs.

    Images of shape (N, H, W) get a channel axis; pixel values are divided by ``scale``.
    """

    def images(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32) / scale
        return x[..., np.newaxis] if x.ndim == 3 else x

    def labels(y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.int32).reshape(-1)

    return Dataset(name, images(train[0]), labels(train[1]), images(val[0]), labels(val[1]), class_names)


def check_labels(raw: RawData, where: str) -> None:
    """One line for labels outside [0, classes) or a class with no training image."""
    classes = len(raw.class_names)
    for split, (images, labels) in (("training", raw.train), ("validation", raw.val)):
        if len(images) != len(labels):
            raise DataError(f"{where}: {split} has {len(images)} images but {len(labels)} labels.")
        bad = labels[(labels < 0) | (labels >= classes)] if len(labels) else labels
        if len(bad):
            raise DataError(f"{where}: {split} label {int(bad[0])} is outside [0, {classes}) "
                            f"for the {classes} classes {raw.class_names[:5]}...")  # fmt: skip
    empty = sorted(set(range(classes)) - set(np.unique(raw.train[1]).tolist()))
    if empty:
        raise DataError(f"{where}: class {raw.class_names[empty[0]]!r} has no training image.")


def to_layout(data: Dataset, layout: str) -> Dataset:
    """Return ``data`` with images in ``layout`` (``channels_last`` NHWC or ``channels_first`` NCHW)."""
    if layout == data.layout:
        return data
    axes = (0, 3, 1, 2) if layout == "channels_first" else (0, 2, 3, 1)
    return Dataset(
        data.name,
        np.ascontiguousarray(data.x_train.transpose(axes)),
        data.y_train,
        np.ascontiguousarray(data.x_val.transpose(axes)),
        data.y_val,
        data.class_names,
        layout,
    )
