"""Datasets that read the user's files (npz, image_folder), the registry and SageMaker channels."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from kx.data import DataError, channels, registry
from kx.data.dataset import RawData
from kx.data.loading import load_dataset, load_raw
from tests.conftest import PROJECT_DIR, train


def npz_cfg(path, **extra):
    return OmegaConf.create(
        {
            "name": "npz",
            "limit": None,
            "channel_dir": None,
            "path": str(path),
            "validation_fraction": 0.25,
            "class_names": None,
            **extra,
        }
    )


def folder_cfg(path, size=(8, 8), channels_=1, **extra):
    return OmegaConf.create(
        {
            "name": "image_folder",
            "limit": None,
            "channel_dir": None,
            "path": str(path),
            "image_size": list(size),
            "channels": channels_,
            "validation_fraction": 0.25,
            **extra,
        }
    )


def images(n, shape=(6, 5), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def test_keras_style_npz_keeps_its_split(tmp_path):
    np.savez(
        tmp_path / "mnist.npz",
        x_train=images(12),
        y_train=np.arange(12) % 3,
        x_test=images(6, seed=1),
        y_test=np.arange(6) % 3,
    )
    raw = load_raw(npz_cfg(tmp_path / "mnist.npz"), 0)
    assert raw.train[0].shape == (12, 6, 5) and raw.val[0].shape == (6, 6, 5)
    assert raw.class_names == ["0", "1", "2"] and raw.scale == 255.0


@pytest.mark.parametrize("layout", ["image-label", "npy-pair", "one-npz-in-folder"])
def test_a_single_set_is_split_reproducibly(tmp_path, layout):
    x, y = images(20), np.arange(20) % 4
    if layout == "image-label":
        np.savez(tmp_path / "data.npz", image=x, label=y)
        path = tmp_path / "data.npz"
    elif layout == "npy-pair":
        np.save(tmp_path / "images.npy", x)
        np.save(tmp_path / "labels.npy", y)
        path = tmp_path
    else:
        np.savez(tmp_path / "whatever.npz", x=x, y=y)
        path = tmp_path
    a, b = load_raw(npz_cfg(path), 7), load_raw(npz_cfg(path), 7)
    assert len(a.train[1]) == 15 and len(a.val[1]) == 5
    assert np.array_equal(a.val[0], b.val[0])
    assert sorted(np.concatenate([a.train[1], a.val[1]]).tolist()) == sorted(y.tolist())


def test_float_images_in_unit_range_are_not_rescaled(tmp_path):
    x = np.random.default_rng(0).random((8, 4, 4, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", image=x, label=np.arange(8) % 2)
    data = load_dataset(npz_cfg(tmp_path / "d.npz"), "channels_first", 0)
    assert data.x_train.shape == (6, 3, 4, 4) and data.x_train.max() <= 1.0 and data.x_train.max() > 0.5


@pytest.mark.parametrize(
    "arrays, extra, message",
    [
        ({"image": images(8).reshape(8, -1), "label": np.arange(8) % 2}, {}, r"images have shape \(8, 30\)"),
        ({"image": images(8), "label": np.zeros((8, 2), int)}, {}, "expected integer class indices"),
        (
            {"image": images(8), "label": np.arange(8) % 2 + 2},
            {"class_names": ["a", "b", "c"]},
            "label 3 is outside \\[0, 3\\)",
        ),
        (
            {"image": images(8), "label": np.arange(8) % 2},
            {"class_names": ["a", "b", "c"]},
            "class 'c' has no training image",
        ),
        (
            {"image": np.full((8, 4, 4), 2.0), "label": np.arange(8) % 2},
            {},
            r"float images must lie in \[0, 1\]",
        ),
        ({"pixels": images(8), "target": np.arange(8)}, {}, r"found arrays \['pixels', 'target'\]"),
        ({"image": images(8), "label": np.arange(7) % 2}, {}, "8 images but 7 labels"),
    ],
)
def test_malformed_npz_is_one_clear_line(tmp_path, arrays, extra, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message) as err:
        load_raw(npz_cfg(tmp_path / "d.npz", **extra), 0)
    assert "\n" not in str(err.value) and "dataset.path=" in str(err.value)


def test_unreadable_npz_names_the_file(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match=r"Cannot read .*d\.npz"):
        load_raw(npz_cfg(tmp_path / "d.npz"), 0)


def write_image_folder(root: Path, classes=("cat", "dog"), per_class=5, size=(12, 10), mode="L") -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            shape = (*size, 3) if mode == "RGB" else size
            pixels = np.clip(rng.normal(60 + 120 * i, 20, shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode).save(root / name / f"{j}.{'png' if j % 2 else 'jpg'}")
    return root


def test_image_folder_reads_resizes_and_names_classes_by_folder(tmp_path):
    write_image_folder(tmp_path / "pics", mode="RGB")
    raw = load_raw(folder_cfg(tmp_path / "pics", size=(8, 6), channels_=1), 0)
    assert raw.class_names == ["cat", "dog"] and raw.train[0].shape[1:] == (8, 6)
    assert len(raw.train[1]) + len(raw.val[1]) == 10 and raw.train[0].dtype == np.uint8
    rgb = load_dataset(folder_cfg(tmp_path / "pics", size=(8, 6), channels_=3), "channels_last", 0)
    assert rgb.x_train.shape[1:] == (8, 6, 3)
    # the dog images are brighter: resizing kept the content
    assert rgb.x_train[rgb.y_train == 1].mean() > rgb.x_train[rgb.y_train == 0].mean() + 0.2


def test_image_folder_with_train_and_validation_folders(tmp_path):
    write_image_folder(tmp_path / "d" / "train", per_class=4)
    write_image_folder(tmp_path / "d" / "validation", per_class=2)
    raw = load_raw(folder_cfg(tmp_path / "d"), 0)
    assert len(raw.train[1]) == 8 and len(raw.val[1]) == 4


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "dog" / "3.png").write_bytes(b"garbage"), r"cannot read .*dog/3\.png"),
        (
            lambda root: [p.unlink() for p in (root / "dog").iterdir()],
            r"class folder .*dog holds no image file",
        ),
        (lambda root: shutil.rmtree(root / "dog"), r"has 1 class folder\(s\)"),
    ],
)
def test_bad_image_folders_are_one_clear_line(tmp_path, damage, message):
    root = write_image_folder(tmp_path / "pics")
    damage(root)
    with pytest.raises(DataError, match=message) as err:
        load_raw(folder_cfg(root), 0)
    assert "\n" not in str(err.value)


def test_channels_round_trip_any_dataset(tmp_path):
    raw = RawData(
        "npz", (images(6), np.arange(6) % 3), (images(3, seed=2), np.arange(3)), ["a", "b", "c"], 255.0
    )
    written = channels.write(raw, tmp_path)
    assert sorted(written) == ["training", "validation"] and written["training"].name == "training.npz"
    back = load_raw(OmegaConf.create({"name": "npz", "channel_dir": str(tmp_path)}), 0)
    assert np.array_equal(back.train[0], raw.train[0]) and np.array_equal(back.val[1], raw.val[1])
    assert back.class_names == ["a", "b", "c"] and back.scale == 255.0


def test_every_registered_dataset_has_a_config_file_and_back():
    names = {spec.name for spec in registry.discover()}
    files = {p.stem for p in (PROJECT_DIR / "conf" / "dataset").glob("*.yaml")}
    assert names == files and {"fashion_mnist", "digits", "synthetic", "npz", "image_folder"} <= names
    with pytest.raises(DataError, match="dataset=nope is not a registered dataset; known: .*digits"):
        registry.spec("nope")


def test_npz_from_s3(tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        monkeypatch.setenv("KX_CACHE", str(tmp_path / "cache"))
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        np.savez(tmp_path / "d.npz", image=images(8), label=np.arange(8) % 2)
        s3.upload_file(str(tmp_path / "d.npz"), "data", "sets/d.npz")
        raw = load_raw(npz_cfg("s3://data/sets/d.npz"), 0)
        assert len(raw.train[1]) == 6 and (tmp_path / "cache" / "s3" / "data" / "sets" / "d.npz").is_file()
        with pytest.raises(DataError, match="no S3 object has that key or prefix"):
            load_raw(npz_cfg("s3://data/missing.npz"), 0)
    finally:
        server.stop()


NEW_DATASET = '''"""Squares and crosses: a dataset added with this module and one YAML file."""
from dataclasses import dataclass

import numpy as np

from kx.data.dataset import RawData
from kx.data.registry import DatasetConfig, DatasetSpec, register


@dataclass
class ShapesConfig(DatasetConfig):
    name: str = "shapes"
    samples: int = 200


def load(cfg, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, cfg.samples)
    x = rng.integers(0, 60, (cfg.samples, 8, 8)).astype(np.uint8)
    x[labels == 0, 2:6, 2:6] = 250
    x[labels == 1, 4, :] = 250
    x[labels == 1, :, 4] = 250
    cut = cfg.samples * 3 // 4
    return RawData("shapes", (x[:cut], labels[:cut]), (x[cut:], labels[cut:]), ["square", "cross"])


register(DatasetSpec("shapes", ShapesConfig, load, shipped=False))
'''


@pytest.mark.slow
def test_a_dataset_is_one_module_and_one_yaml(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for item in ("train.py", "conf", "kx"):
        copy = shutil.copytree if (PROJECT_DIR / item).is_dir() else shutil.copy
        copy(PROJECT_DIR / item, project / item)
    (project / "kx" / "data" / "shapes.py").write_text(NEW_DATASET)
    (project / "conf" / "dataset" / "shapes.yaml").write_text(
        "defaults:\n  - /schema/dataset@_here_: shapes\n  - _self_\n\nsamples: 240\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(project / "train.py"),
            "dataset=shapes",
            "model=mlp",
            "train.epochs=3",
            "tracking.enabled=false",
            "hydra.run.dir=run",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "shapes: 180 training / 60 validation images of shape (8, 8, 1), 2 classes" in proc.stdout
    best = float(proc.stdout.rsplit("best_val_acc=", 1)[1].split()[0])
    assert best > 0.9


@pytest.mark.slow
def test_image_folder_trains_through_train_py(tmp_path):
    write_image_folder(tmp_path / "pics", classes=("dark", "mid", "light"), per_class=12)
    proc = train(
        tmp_path,
        "dataset=image_folder",
        f"dataset.path={tmp_path / 'pics'}",
        "dataset.image_size=[8,8]",
        "model=mlp",
        "train.epochs=3",
        "tracking.enabled=false",
        "hydra.run.dir=run",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "image_folder: 29 training / 7 validation images of shape (8, 8, 1), 3 classes" in proc.stdout


@pytest.mark.slow
def test_an_image_folder_dataset_reaches_a_rehearsed_sagemaker_job(tmp_path):
    from tests.helpers.moto import launch

    write_image_folder(tmp_path / "pics", classes=("dark", "mid", "light"), per_class=12)
    proc = launch(
        tmp_path,
        "target=sagemaker_local",
        "dataset=image_folder",
        f"dataset.path={tmp_path / 'pics'}",
        "dataset.image_size=[8,8]",
        "model=mlp",
        "train.epochs=2",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    name = next(line.split()[1] for line in proc.stderr.splitlines() if line.startswith("rehearsing "))
    root = tmp_path / "outputs" / "sagemaker_local" / name
    root = next(p.parents[2] for p in root.rglob("inputdataconfig.json"))  # /opt/ml of the (first) host
    back = channels.read(str(root / "input" / "data"), "image_folder")
    assert back.class_names == ["dark", "light", "mid"] and back.train[0].shape[1:] == (8, 8)
    assert "image_folder: 29 training / 7 validation images of shape (8, 8, 1), 3 classes" in proc.stdout


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    pytest.importorskip("tensorflow_datasets")
    from tests.helpers.tfds_tiny import prepare

    return prepare(tmp_path_factory.mktemp("tfds"))


def tfds_cfg(dataset, **extra):
    return OmegaConf.create(
        {
            "name": "tfds",
            "limit": None,
            "channel_dir": None,
            "dataset": str(dataset),
            "data_dir": None,
            "train_split": "train",
            "validation_split": "test",
            "image_key": "image",
            "label_key": "label",
            **extra,
        }
    )


@pytest.mark.slow
def test_tfds_reads_a_prepared_dataset_by_folder_or_by_name(tfds_dir):
    raw = load_raw(tfds_cfg(tfds_dir), 0)
    assert raw.class_names == ["dark", "light"] and raw.train[0].shape == (24, 8, 8) and len(raw.val[1]) == 8
    by_name = load_raw(tfds_cfg("tiny:1.0.0", data_dir=str(tfds_dir.parents[1])), 0)
    assert np.array_equal(by_name.train[1], raw.train[1])
    # the light images (label 1) are brighter
    assert raw.train[0][raw.train[1] == 1].mean() > raw.train[0][raw.train[1] == 0].mean() + 100


@pytest.mark.slow
@pytest.mark.parametrize(
    "cfg, message",
    [
        (
            lambda d: tfds_cfg(d, validation_split="validation"),
            r"has no split 'validation'; it has \['test', 'train'\]",
        ),
        (lambda d: tfds_cfg(d, label_key="target"), "examples have no feature 'target'"),
        (
            lambda d: tfds_cfg("mnist", data_dir=str(d.parents[1])),
            "is not prepared under .*kx does not download",
        ),
    ],
)
def test_tfds_problems_are_one_line(tfds_dir, cfg, message):
    with pytest.raises(DataError, match=message) as err:
        load_raw(cfg(tfds_dir), 0)
    assert "\n" not in str(err.value)
