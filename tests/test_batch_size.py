"""train.batch_size's default fits the training set: small datasets get enough steps per epoch."""

import logging

import pytest

from kx.config.batch_size import auto_batch_size, resolve
from kx.data.loading import load_dataset


@pytest.mark.parametrize(
    "dataset, samples, batch",
    [
        ("fashion_mnist", 54000, 256),  # the full set keeps the recipe's batch (the speed figures')
        ("fashion_mnist dataset.limit=5000", 5000, 128),  # the Quick start's short run
        ("digits", 1438, 32),  # was 256: 5 steps per epoch, and the README's examples stayed at chance
        ("examples/make_data.py's pictures", 720, 16),  # was 256: 2 steps per epoch
        ("a handful", 40, 16),  # never below 16
    ],
)
def test_the_default_batch_gives_an_epoch_enough_steps(dataset, samples, batch):
    assert auto_batch_size(samples) == batch


def test_digits_by_default_trains_at_batch_32_and_says_so_once(compose_cfg, caplog):
    cfg = compose_cfg("dataset=digits", "model=mlp")
    data = load_dataset(cfg.dataset, "channels_last", cfg.train.seed)
    with caplog.at_level(logging.INFO, logger="kx"):
        train = resolve(cfg.train, len(data.y_train))
    assert (cfg.train.batch_size, train.batch_size) == (None, 32)
    lines = [r.getMessage() for r in caplog.records if "train.batch_size" in r.getMessage()]
    assert lines == [
        "train.batch_size 32: 1438 training images make 44 steps per epoch (at 256: 5; "
        "train.batch_size=N sets it)"
    ]


def test_an_explicit_batch_size_is_kept_and_the_recipes_batch_is_not_announced(compose_cfg, caplog):
    with caplog.at_level(logging.INFO, logger="kx"):
        assert resolve(compose_cfg("train.batch_size=256").train, 1438).batch_size == 256
        assert resolve(compose_cfg().train, 54000).batch_size == 256
    assert not caplog.records
