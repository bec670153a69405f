"""A tiny TFDS dataset prepared on disk with no download (TFDS's own builder API), for dataset=tfds."""

from pathlib import Path

import numpy as np


def prepare(data_dir: Path, file_format: str = "array_record") -> Path:
    """Build ``tiny`` (8x8 grey images, classes "dark"/"light") under ``data_dir``; return its folder."""
    import tensorflow_datasets as tfds

    class Tiny(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {
                "image": tfds.features.Image(shape=(8, 8, 1)),
                "label": tfds.features.ClassLabel(names=["dark", "light"]),
            }
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(24, 0), "test": self._generate_examples(8, 1)}

        def _generate_examples(self, n, seed):
            rng = np.random.default_rng(seed)
            for i in range(n):
                image = rng.integers(0, 100, (8, 8, 1), dtype=np.uint8) + np.uint8(150 * (i % 2))
                yield i, {"image": image, "label": i % 2}

    builder = Tiny(data_dir=str(data_dir), file_format=file_format)
    builder.download_and_prepare()
    return Path(builder.data_dir)
