"""A sweep's budget and heartbeat ranges: one rule (kx.config.validate), the same line from train.py's
check and from the sweep's plan."""

import pytest

from kx.config import ConfigError, validate
from kx.sweep.plan import plan


@pytest.mark.parametrize(
    "setting",
    [
        "sweep.budget.trials=0",
        "sweep.budget.parallel=0",
        "sweep.budget.max_failure_rate=1.5",
        "sweep.grace_period=0",
    ],
)
def test_the_plan_refuses_what_the_config_check_refuses_in_the_same_words(compose_cfg, setting):
    cfg = compose_cfg("sweep=quick", setting)
    with pytest.raises(ConfigError) as checked:
        validate(cfg)
    with pytest.raises(ConfigError) as planned:
        plan(cfg, ["sweep=quick"])
    assert str(planned.value) == str(checked.value) and setting.split("=")[0] in str(checked.value)
