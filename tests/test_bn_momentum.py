"""model.bn_momentum: the automatic choice by run length, an explicit value, and its range."""

import pytest

from kx.backends.bn_momentum import auto_momentum, momentum, resolve
from kx.config import ConfigError, validate


def test_long_runs_keep_keras_momentum_and_short_runs_average_over_a_tenth_of_the_run():
    assert auto_momentum(9380) == 0.99  # the default full run: 20 epochs x 469 steps
    assert auto_momentum(1000) == 0.99
    assert auto_momentum(120) == 0.9167  # 5,000 images, 3 epochs
    assert auto_momentum(10) == 0.9


def test_resolve_sets_the_automatic_value_and_keeps_an_explicit_one(compose_cfg):
    cfg = compose_cfg("train.epochs=3")
    assert momentum(resolve(cfg.model, 5000, 128, cfg.train.epochs)) == 0.9167
    assert momentum(resolve(cfg.model, 60000, 128, 20)) == 0.99
    explicit = compose_cfg("model.bn_momentum=0.95").model
    assert momentum(resolve(explicit, 5000, 128, 3)) == 0.95


@pytest.mark.parametrize("value", ["0", "1", "1.5"])
def test_momentum_outside_the_open_unit_interval_is_refused(compose_cfg, value):
    with pytest.raises(ConfigError, match=rf"model.bn_momentum={value}.*: expected a number in \(0, 1\)"):
        validate(compose_cfg(f"model.bn_momentum={value}"))
