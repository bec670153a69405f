"""The in-memory dataset every backend trains on, the raw arrays it is made from, and the one pixel
transform training and serving share."""

import dataclasses
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from kx.errors import KxError

Split = Tuple[np.ndarray, np.ndarray]  # (images, labels)


class DataError(KxError):
    """Data could not be found or read; the message names the file or places and how to fix it."""


@dataclass
class Dataset:
    """Images as float32 in [0, 1] and integer labels, in the layout the backend asked for.

    ``raw_dtype``, ``raw_shape`` and ``scale`` say how the dataset's own images look before
    :func:`prepare_images` (e.g. uint8 (28, 28) pixels divided by 255): what a served model's clients send.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: List[str]
    layout: str = "channels_last"
    raw_dtype: str = "float32"
    raw_shape: Tuple[int, ...] = ()
    scale: float = 1.0

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def raw_images(self, x: np.ndarray) -> np.ndarray:
        """``x`` (images of this dataset, any layout) as the dataset's own images: the inverse of
        :func:`prepare_images`."""
        if self.layout == "channels_first":
            x = x.transpose(0, 2, 3, 1)
        raw = x.reshape(len(x), *self.raw_shape) * self.scale
        return (
            np.rint(raw).astype(self.raw_dtype) if self.raw_dtype == "uint8" else raw.astype(self.raw_dtype)
        )


def prepare_images(x: np.ndarray, scale: float, layout: str = "channels_last") -> np.ndarray:
    """The dataset's own images (N, H, W) or (N, H, W, C) as model input: float32 / ``scale``, a channel
    axis added when missing, arranged in ``layout``."""
    x = np.array(x, dtype=np.float32)  # a copy, divided in place: one full-size allocation, not two
    x /= np.float32(scale)
    x = x[..., np.newaxis] if x.ndim == 3 else x
    return arrange(x, layout)


def arrange(x: np.ndarray, layout: str, source: str = "channels_last") -> np.ndarray:
    """Images ``x`` (N, 4 axes) moved from layout ``source`` to ``layout``."""
    if layout == source:
        return x
    axes = (0, 3, 1, 2) if layout == "channels_first" else (0, 2, 3, 1)
    return np.ascontiguousarray(x.transpose(axes))


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
        return from_raw(self.name, self.train, self.val, self.class_names, self.scale)


def split_shuffled(data: Split, validation_fraction: float, seed: int, where: str) -> Tuple[Split, Split]:
    """``data`` shuffled with ``seed``; its last ``validation_fraction`` (at least one sample) validates.
    A set too small to keep a training sample raises one :class:`DataError` line naming ``where``.

    Not scikit-learn's ``train_test_split``: npz and image_folder jobs split inside SageMaker's MXNet
    image, whose environment (``.venv38``, from kx's job requirements) has no scikit-learn."""
    images, labels = data
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = len(order) - max(1, int(round(len(order) * validation_fraction)))
    if cut < 1:
        raise DataError(
            f"{where}: {len(order)} samples cannot be split with validation_fraction={validation_fraction}."
        )
    return (images[order[:cut]], labels[order[:cut]]), (images[order[cut:]], labels[order[cut:]])


def numbered_classes(*labels: np.ndarray) -> List[str]:
    """Class names for unnamed labels: "0", "1", ... up to the largest label in any of ``labels``."""
    return [str(c) for c in range(int(max(y.max(initial=0) for y in labels)) + 1)]


def from_raw(name: str, train: Split, val: Split, class_names: List[str], scale: float = 255.0) -> Dataset:
    """Build a channels-last :class:`Dataset` from raw (images, labels) pairs.

    Images of shape (N, H, W) get a channel axis; pixel values are divided by ``scale``; the raw
    images' dtype and shape are what a served model's clients send.
    """

    def labels(y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.int32).reshape(-1)

    x_train, x_val = prepare_images(train[0], scale), prepare_images(val[0], scale)
    raw_shape: Sequence[int] = np.shape(train[0])[1:]
    return Dataset(
        name,
        x_train,
        labels(train[1]),
        x_val,
        labels(val[1]),
        class_names,
        raw_dtype=np.asarray(train[0]).dtype.name,
        raw_shape=tuple(raw_shape),
        scale=scale,
    )


def check_labels(raw: RawData, where: str) -> None:
    """One line for labels outside [0, classes) or a class with no training image."""
    classes = len(raw.class_names)
    for split, (images, labels) in (("training", raw.train), ("validation", raw.val)):
        if len(images) != len(labels):
            raise DataError(f"{where}: {split} has {len(images)} images but {len(labels)} labels.")
        bad = labels[(labels < 0) | (labels >= classes)] if len(labels) else labels
        if len(bad):
            raise DataError(
                f"{where}: {split} label {int(bad[0])} is outside [0, {classes}) "
                f"for the {classes} classes {raw.class_names[:5]}..."
            )
    empty = sorted(set(range(classes)) - set(np.unique(raw.train[1]).tolist()))
    if empty:
        raise DataError(f"{where}: class {raw.class_names[empty[0]]!r} has no training image.")


def to_layout(data: Dataset, layout: str) -> Dataset:
    """Return ``data`` with images in ``layout`` (``channels_last`` NHWC or ``channels_first`` NCHW)."""
    if layout == data.layout:
        return data
    return dataclasses.replace(
        data,
        x_train=arrange(data.x_train, layout, data.layout),
        x_val=arrange(data.x_val, layout, data.layout),
        layout=layout,
    )
