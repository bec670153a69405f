"""A sweep file as a SageMaker tuning job: translation, rejections, the objective's regex on train.py's
real log lines, and the SDK's offline request route pinned against the SDK's own pipeline steps."""

import logging
import re

import pytest

from kx.backends.monitor import EpochMonitor
from kx.config import Objective
from kx.errors import KxError
from kx.sagemaker.rehearsal import scrape_metrics
from kx.sagemaker.tuning_request import metric_definitions, translate


@pytest.fixture
def sweep_cfg(compose_cfg):
    """The config for ``target=sagemaker sweep=quick`` and ``sweep.KEY=VALUE`` overrides, its params
    replaced when given."""

    def _cfg(params=None, *overrides):
        cfg = compose_cfg("target=sagemaker", "sweep=quick", *overrides)
        if params is not None:
            cfg.sweep.params = params
        return cfg

    return _cfg


def test_every_range_kind_becomes_its_sagemaker_range(sweep_cfg):
    spec = translate(
        sweep_cfg(
            {
                "model.dense_units": "choice(32, 64, 128)",
                "train.optimizer": "choice(sgd, adam)",
                "train.nesterov": "choice(true, false)",
                "train.epochs": "range(2, 6)",
                "train.batch_size": "int(interval(16, 64))",
                "model.dense_layers": "tag(log, int(interval(1, 8)))",
                "model.dropout": "interval(0.1, 0.5)",
                "train.learning_rate": "tag(log, interval(0.001, 0.1))",
                "train.momentum": "0.8",
            }
        )
    )
    assert spec.ranges == {
        "model.dense_units": {"kind": "Categorical", "values": ["32", "64", "128"]},
        "train.optimizer": {"kind": "Categorical", "values": ["sgd", "adam"]},
        "train.nesterov": {"kind": "Categorical", "values": ["true", "false"]},
        "train.epochs": {"kind": "Integer", "min": 2, "max": 5, "scaling": "Linear"},  # range() excludes hi
        "train.batch_size": {"kind": "Integer", "min": 16, "max": 64, "scaling": "Linear"},
        "model.dense_layers": {"kind": "Integer", "min": 1, "max": 8, "scaling": "Logarithmic"},
        "model.dropout": {"kind": "Continuous", "min": 0.1, "max": 0.5, "scaling": "Linear"},
        "train.learning_rate": {"kind": "Continuous", "min": 0.001, "max": 0.1, "scaling": "Logarithmic"},
    }
    assert spec.static == {"train.momentum": "0.8"}  # a plain value: the same in every trial
    assert (spec.strategy, spec.early_stopping, spec.max_jobs, spec.max_parallel) == ("Bayesian", "Off", 6, 1)
    assert spec.objective_metric == "best_val_acc" and spec.goal.maximize


@pytest.mark.parametrize(
    "params, overrides, message",
    [
        (
            {"train.epochs": "range(2, 10, 2)"},
            [],
            "sweep.params.train.epochs='range(2, 10, 2)': SageMaker integer ranges have no step",
        ),
        (
            {"model.dense_units": f"choice({','.join(str(n) for n in range(1, 32))})"},
            [],
            "a SageMaker categorical range takes at most 30 values, this one has 31",
        ),
        (
            None,
            ["sweep.sampler=grid"],
            "sweep.params.train.learning_rate: sweep.sampler=grid takes choice(...) ranges only in SageMaker, "
            "this one is continuous",
        ),
        (
            None,
            ["sweep.pruner=hyperband"],
            "sweep.sampler=tpe with sweep.pruner=hyperband: SageMaker's Hyperband strategy picks trials at random",
        ),
        ({"train.epochs": "3"}, [], "sweep=quick sweeps nothing"),
        (
            {"train.learning_rat": "interval(0.1, 0.2)"},
            [],
            "Unknown hyperparameter --train.learning_rat; nearest valid keys: train.learning_rate",
        ),
    ],
)
def test_what_sagemaker_cannot_express_is_one_line_naming_the_parameter(
    sweep_cfg, params, overrides, message
):
    with pytest.raises(KxError) as err:
        translate(sweep_cfg(params, *overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_sampler_pruner_budget_and_seed_become_strategy_early_stopping_and_limits(sweep_cfg):
    median = translate(sweep_cfg(None, "sweep.pruner=median", "sweep.seed=7", "sweep.budget.parallel=3"))
    assert (median.strategy, median.early_stopping, median.seed, median.max_parallel) == (
        "Bayesian",
        "Auto",
        7,
        3,
    )
    hyperband = translate(
        sweep_cfg(None, "sweep.sampler=random", "sweep.pruner=hyperband", "train.epochs=12")
    )
    assert (hyperband.strategy, hyperband.early_stopping, hyperband.max_resource) == ("Hyperband", "Off", 12)
    grid = translate(sweep_cfg({"model.dense_units": "choice(32, 64)"}, "sweep.sampler=grid"))
    assert (grid.strategy, grid.max_jobs) == ("Grid", None)  # Grid runs every combination
    warm = translate(sweep_cfg(None, "target.warm_start=[kx-tensorflow-ab12-261101-120000]"))
    assert warm.warm_start == ["kx-tensorflow-ab12-261101-120000"]


def test_a_sweep_objective_unlike_the_default_travels_to_every_trial(sweep_cfg):
    default = translate(sweep_cfg())
    assert not any(k.startswith("train.objective") for k in default.static)
    loss = translate(sweep_cfg(None, "sweep.objective.metric=val_loss", "sweep.objective.direction=minimize"))
    assert loss.static == {"train.objective.metric": "val_loss", "train.objective.direction": "minimize"}
    assert loss.objective_metric == "best_val_loss" and not loss.goal.maximize


def train_log(values, caplog) -> str:
    """The log lines train.py's epoch monitor prints for per-epoch val_acc ``values``."""
    monitor = EpochMonitor(Objective("val_acc", "maximize"))
    with caplog.at_level(logging.INFO, logger="kx"):
        for epoch, value in enumerate(values, 1):
            monitor.end_epoch(
                epoch, {"loss": 1.0 / epoch, "acc": value, "val_loss": 1 - value, "val_acc": value}
            )
        monitor.report_best()
    return "\n".join(f"[2026-11-28 09:00:00,000][kx][INFO] - {r.getMessage()}" for r in caplog.records)


def test_metric_names_mean_what_they_mean_for_local_runs_and_the_objective_is_the_best_epoch(caplog):
    log = train_log([0.5, 0.8, 0.7], caplog)
    definitions = metric_definitions(Objective("val_acc", "maximize"))
    final = scrape_metrics(log, definitions)
    assert final["val_acc"] == 0.7 and final["val_loss"] == pytest.approx(0.3)  # the last epoch's
    assert final["best_val_acc"] == 0.8 and final["best_val_loss"] == pytest.approx(0.2)  # the best epoch's
    assert final["best_epoch"] == 2
    objective = {d["Name"]: d["Regex"] for d in definitions}["best_val_acc"]
    # early stopping sees every epoch's value; the final value (the last match) is the best epoch's
    assert [float(v) for v in re.findall(objective, log)] == [0.5, 0.8, 0.7, 0.8]


def test_a_jobs_config_is_composed_as_train_py_composes_it_in_the_job():
    from kx.sagemaker.job_tracking import job_config

    cfg = job_config(
        {
            "backend": "tensorflow",
            "model": "mlp",
            "model.dropout": "0.25",
            "sagemaker_program": "train.py",
            "model_dir": "s3://b/m",
        },
        sweep="quick",
    )
    assert (cfg.model.name, cfg.model.dropout, cfg.sweep.name) == ("mlp", 0.25, "quick")
    assert job_config({"train.learning_rat": "0.1"}) is None  # the job failed on it: raw params are logged


def test_the_local_hyperband_sweep_file_means_the_same_on_sagemaker(compose_cfg):
    """sweep=fashion_local: Hyperband's rungs span the same epochs, the hour becomes MaxRuntimeInSeconds."""
    spec = translate(compose_cfg("target=sagemaker", "sweep=fashion_local"))
    assert (spec.strategy, spec.min_resource, spec.max_resource, spec.max_runtime_s) == (
        "Hyperband",
        2,
        18,
        3600,
    )
    assert spec.static["train.epochs"] == "18" and "train.epochs" not in spec.ranges
    cfg = compose_cfg("target=sagemaker", "sweep=fashion_local")
    cfg.sweep.params["train.epochs"] = "20"
    higher = translate(cfg)
    assert (higher.min_resource, higher.max_resource) == (2, 20)  # the local rungs: 2, 6, 20
    assert translate(compose_cfg("target=sagemaker", "sweep=quick")).max_runtime_s is None
    with pytest.raises(
        KxError, match=r"^sweep.budget.minutes=1: a SageMaker tuning job's MaxRuntimeInSeconds"
    ):
        translate(compose_cfg("target=sagemaker", "sweep=fashion_local", "sweep.budget.minutes=1"))
