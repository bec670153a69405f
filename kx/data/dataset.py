"""The in-memory dataset every backend trains on."""

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from kx.errors import KxError


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


def from_uint8(
    name: str,
    train: Tuple[np.ndarray, np.ndarray],
    val: Tuple[np.ndarray, np.ndarray],
    class_names: List[str],
    scale: float = 255.0,
) -> Dataset:
    """Build a channels-last :class:`Dataset` from raw (images, labels) pairs.

    Images of shape (N, H, W) get a channel axis; pixel values are divided by ``scale``.
    """

    def images(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32) / scale
        return x[..., np.newaxis] if x.ndim == 3 else x

    def labels(y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.int32).reshape(-1)

    return Dataset(name, images(train[0]), labels(train[1]), images(val[0]), labels(val[1]), class_names)


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
