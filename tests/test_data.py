"""Datasets: Fashion-MNIST's file formats and lookup, digits, synthetic, and image layouts."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from kx.data import DataError, digits, fashion_mnist, synthetic
from kx.data.dataset import RawData, to_layout
from kx.data.fashion_mnist import CLASS_NAMES, IDX_FILES


def load_fashion(path, download, search=()):
    """Fashion-MNIST as train.py gets it, from the given places."""
    return RawData("fashion_mnist", *fashion_mnist.load_arrays(path, download, search), CLASS_NAMES).dataset()


def write_idx(path: Path, array: np.ndarray) -> Path:
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_fashion_idx(folder: Path, n_train: int = 12, n_val: int = 6, gz: bool = True) -> Path:
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": rng.integers(0, 10, n_train),
        "val_images": rng.integers(0, 256, (n_val, 28, 28)),
        "val_labels": rng.integers(0, 10, n_val),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        write_idx(folder / f"{IDX_FILES[key]}{suffix}", array)
    return folder


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_load_normalised_with_a_channel_axis(tmp_path, gz):
    data = load_fashion(str(write_fashion_idx(tmp_path, gz=gz)), download=False)
    assert data.x_train.shape == (12, 28, 28, 1) and data.x_val.shape == (6, 28, 28, 1)
    assert data.x_train.dtype == np.float32 and data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0
    assert data.y_train.dtype == np.int32 and data.num_classes == 10
    assert data.class_names[9] == "Ankle boot"


@pytest.mark.parametrize("channel_folders", [False, True])
def test_npz_channel_format_loads(tmp_path, channel_folders):
    rng = np.random.default_rng(1)
    for name, n in (("training", 8), ("validation", 4)):
        folder = tmp_path / name if channel_folders else tmp_path
        folder.mkdir(exist_ok=True)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        np.savez(folder / f"{name}.npz", image=images, label=np.arange(n, dtype=np.uint8) % 10)
    data = load_fashion(str(tmp_path), download=False)
    assert data.x_train.shape == (8, 28, 28, 1) and list(data.y_val) == [0, 1, 2, 3]


def test_real_fashion_mnist_from_the_debian_package():
    if not (fashion_mnist.DEBIAN_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("apt-get install dataset-fashion-mnist")
    data = load_fashion(None, download=False)
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_val.shape == (10000, 28, 28, 1)
    assert np.bincount(data.y_train).tolist() == [6000] * 10


def test_bad_magic_names_the_file(tmp_path):
    write_fashion_idx(tmp_path)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz is not an IDX file .* 0x00000801"):
        load_fashion(str(tmp_path), download=False)


def test_truncated_payload_names_the_file_and_sizes(tmp_path):
    write_fashion_idx(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is truncated or corrupt: .*\(6, 28, 28\)"):
        load_fashion(str(tmp_path), download=False)


def test_truncated_gzip_names_the_file(tmp_path):
    write_fashion_idx(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"Cannot read IDX file .*train-images-idx3-ubyte.gz"):
        load_fashion(str(tmp_path), download=False)


def test_image_label_count_mismatch_is_reported(tmp_path):
    write_fashion_idx(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11))
    with pytest.raises(DataError, match=r"12 images but 11 labels"):
        load_fashion(str(tmp_path), download=False)


def test_explicit_path_without_data_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(DataError, match=r"dataset.path=.* holds no Fashion-MNIST data"):
        load_fashion(str(tmp_path), download=True)


def test_lookup_order_takes_the_first_place_with_data(tmp_path):
    empty, second = tmp_path / "empty", write_fashion_idx(tmp_path / "second", n_train=3)
    empty.mkdir()
    data = load_fashion(None, download=False, search=[empty, second])
    assert len(data.y_train) == 3


def test_nothing_found_and_download_failing_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch):
    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(fashion_mnist, "_download", offline)
    with pytest.raises(DataError) as err:
        load_fashion(None, download=True, search=[tmp_path / "a", tmp_path / "b"])
    message = str(err.value)
    assert f"looked in {tmp_path / 'a'}, {tmp_path / 'b'}" in message
    assert "download failed (OSError: network is unreachable)" in message
    assert "apt-get install dataset-fashion-mnist" in message and "dataset.path=" in message


def test_keras_cache_dir_follows_keras_home(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert fashion_mnist.keras_cache_dir() == tmp_path / "datasets" / "fashion-mnist"


def test_digits_split_is_reproducible_and_complete():
    a, b = (
        digits.load(OmegaConf.create({"validation_fraction": 0.2}), 3).dataset(),
        digits.load(OmegaConf.create({"validation_fraction": 0.2}), 3).dataset(),
    )
    assert np.array_equal(a.y_val, b.y_val) and len(a.y_train) + len(a.y_val) == 1797
    assert len(a.y_val) == 359 and a.input_shape == (8, 8, 1) and a.x_train.max() == 1.0


def test_synthetic_has_the_requested_shape_and_is_separable():
    data = synthetic.generate(300, 100, [12, 10], 3, 4, noise=0.3, seed=0).dataset()
    assert data.x_train.shape == (300, 12, 10, 3) and data.num_classes == 4
    # nearest class mean on the training set classifies validation images well above chance
    means = np.stack([data.x_train[data.y_train == c].mean(axis=0) for c in range(4)])
    distances = ((data.x_val[:, None] - means[None]) ** 2).sum(axis=(2, 3, 4))
    assert (distances.argmin(axis=1) == data.y_val).mean() > 0.9


def test_layout_is_chosen_by_the_caller():
    data = synthetic.generate(5, 5, [6, 4], 2, 3, noise=0.1, seed=0).dataset()
    first = to_layout(data, "channels_first")
    assert first.x_train.shape == (5, 2, 6, 4) and first.layout == "channels_first"
    assert np.array_equal(to_layout(first, "channels_last").x_train, data.x_train)
