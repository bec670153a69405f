"""TensorFlow Datasets already on disk (``dataset=tfds``): kx reads them, it never downloads.

``dataset.dataset`` is a TFDS name (``mnist``, ``mnist:3.0.1``) looked up in ``dataset.data_dir``
(default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``), or the folder of a prepared dataset.
kx reads TFDS's ``array_record`` format through ``as_data_source``, which needs no TensorFlow (so
``launch.py`` can ship the data to SageMaker); prepare a dataset in that format with
``tfds build NAME --file_format=array_record``.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
from omegaconf import MISSING, DictConfig

from kx.data.dataset import DataError, RawData, Split, check_labels, numbered_classes
from kx.data.registry import DatasetConfig, DatasetSpec, register
from kx.data.validation import required


@dataclass
class TfdsConfig(DatasetConfig):
    name: str = "tfds"
    dataset: str = MISSING  # a TFDS name (mnist, mnist:3.0.1) or a prepared dataset's folder
    data_dir: Optional[str] = None  # None: $TFDS_DATA_DIR, else ~/tensorflow_datasets
    train_split: str = "train"
    validation_split: str = "test"
    image_key: str = "image"
    label_key: str = "label"


def load(cfg: DictConfig, seed: int) -> RawData:
    where = f"dataset.dataset={cfg.dataset!r}"
    builder = _builder(cfg, where)
    format_ = str(builder.info.file_format).rsplit(".", 1)[-1].lower()
    if format_ != "array_record":
        raise DataError(
            f"{where} is stored as {format_}; kx reads TFDS's array_record format (no TensorFlow "
            f"needed): rebuild it with `tfds build {builder.name} --file_format=array_record`."
        )
    train = _split(builder, cfg.train_split, cfg, where)
    val = _split(builder, cfg.validation_split, cfg, where)
    raw = RawData("tfds", train, val, _class_names(builder, cfg.label_key, train, val))
    check_labels(raw, where)
    return raw


def _builder(cfg: DictConfig, where: str) -> Any:
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DataError(
            f'dataset=tfds needs tensorflow-datasets ({err}): pip install -e ".[tfds]".'
        ) from None
    folder = Path(cfg.dataset).expanduser()
    if (folder / "dataset_info.json").is_file():
        return tfds.builder_from_directory(str(folder))
    try:
        builder = tfds.builder(cfg.dataset, data_dir=cfg.data_dir)
    except Exception as err:  # noqa: BLE001 - TFDS raises many kinds for an unknown name
        raise DataError(f"{where} is not a TFDS dataset or a prepared dataset's folder ({err}).") from None
    if not builder.is_prepared():
        raise DataError(
            f"{where} is not prepared under {builder.data_dir}; kx does not download TFDS data: "
            f"run `tfds build {cfg.dataset} --file_format=array_record` first."
        )
    return builder


def _split(builder: Any, split: str, cfg: DictConfig, where: str) -> Split:
    if split not in builder.info.splits:
        raise DataError(f"{where} has no split {split!r}; it has {sorted(builder.info.splits)}.")
    source = builder.as_data_source(split=split)
    examples = [source[i] for i in range(len(source))]
    missing = {cfg.image_key, cfg.label_key} - set(examples[0] if examples else {})
    if missing:
        raise DataError(
            f"{where}: examples have no feature {sorted(missing)[0]!r} "
            "(set dataset.image_key / dataset.label_key)."
        )
    images = np.stack([np.asarray(e[cfg.image_key]) for e in examples])
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    return images, np.asarray([int(e[cfg.label_key]) for e in examples], dtype=np.int64)


def _class_names(builder: Any, label_key: str, train: Split, val: Split) -> List[str]:
    feature = builder.info.features[label_key]
    names = getattr(feature, "names", None)
    if names:
        return [str(n) for n in names]
    return numbered_classes(train[1], val[1])


def check(cfg: DictConfig) -> None:
    required(cfg, "dataset", "a TFDS dataset already on disk")


register(DatasetSpec("tfds", TfdsConfig, load, check=check))
