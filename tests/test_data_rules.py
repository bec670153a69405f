"""The data rules every dataset shares (kx/data/dataset.py): the train/validation split and the
class names of unnamed labels."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from kx.data import digits
from kx.data.dataset import DataError, numbered_classes, split_shuffled


def test_digits_split_is_the_one_it_always_was():
    from sklearn.datasets import load_digits

    target = load_digits().target
    order = np.random.default_rng(3).permutation(len(target))
    cut = len(order) - int(round(len(order) * 0.2))
    raw = digits.load(OmegaConf.create({"validation_fraction": 0.2}), 3)
    assert (raw.train[1] == target[order[:cut]]).all() and (raw.val[1] == target[order[cut:]]).all()


def test_a_split_keeps_one_validation_sample_and_refuses_no_training_sample():
    data = (np.arange(10).reshape(10, 1), np.arange(10))
    train, val = split_shuffled(data, 0.01, 0, "here")
    assert len(val[1]) == 1 and len(train[1]) == 9
    assert sorted(np.concatenate([train[1], val[1]])) == list(range(10))
    with pytest.raises(DataError, match="here: 1 samples cannot be split with validation_fraction=0.5"):
        split_shuffled((data[0][:1], data[1][:1]), 0.5, 0, "here")


def test_unnamed_classes_count_up_to_the_largest_label():
    assert numbered_classes(np.array([0, 2]), np.array([4])) == ["0", "1", "2", "3", "4"]
    assert numbered_classes(np.array([], dtype=int), np.array([1])) == ["0", "1"]
