"""One rule writes a value in Hydra's override grammar (kx.config.keys.hydra_value): a sweep's trials
and a SageMaker job's hyperparameters read back exactly the value that was meant."""

import math

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from kx.sagemaker.script_mode import hydra_value as job_value_text
from kx.sweep.overrides import render

VALUES = [
    "adam",
    "1e5",
    "0.5",
    "inf",
    "NaN",
    "True",
    "null",
    "a b",
    "it's",
    "/tmp/out dir/0",
    "x@y+z",
    0.01,
    3,
    True,
    None,
    [1, "2"],
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_rendered_value_reads_back_as_itself(value):
    parsed = OverridesParser.create().parse_override(render("k", value)).value()
    assert parsed == value or (isinstance(value, float) and math.isnan(value))
    assert isinstance(parsed, type(value)) or value is None


def test_sweeps_and_jobs_share_the_rule():
    assert all(render("k", v) == f"k={job_value_text(v)}" for v in VALUES)
