"""Sweeps that spend a budget well: Hyperband over epochs (the rule, and a real tiny sweep whose weak
trials stop at the lowest rung while the best one trains on) and the time budget (``budget.minutes``)."""

import datetime
import os
import re
import subprocess
import sys
import time

import optuna
import pytest
import yaml

from kx.errors import KxError
from kx.sweep import hyperband
from kx.sweep.hyperband import Run
from kx.sweep.plan import plan
from kx.sweep.study import busy_seconds
from tests.conftest import train
from tests.helpers.processes import busy
from tests.helpers.sweeps import PROJECT_DIR, study, sweep_runs

DIGITS = ["dataset=digits", "model=mlp", "backend=torch", "hydra.sweep.dir=sweep"]


def test_rungs_divide_the_epochs_by_three_down_to_the_fewest():
    assert hyperband.rungs(1, 9) == [1, 3, 9]
    assert hyperband.rungs(1, 3) == [1, 3]
    assert hyperband.rungs(2, 20) == [2, 6, 20]
    assert hyperband.rungs(5, 5) == [5]


def test_brackets_fill_cheapest_first_with_hyperbands_shares():
    assert hyperband.bracket_sizes([1, 3, 9]) == [9, 5, 3]
    ladder = [1, 3]  # shares 3 (1 epoch) and 2 (3 epochs), then again
    runs = []
    for number in range(7):
        planned = hyperband.new_trial(runs, ladder)
        runs.append(Run(number, {}, planned.epochs, planned.bracket, None))
    assert [r.epochs for r in runs] == [1, 1, 1, 3, 3, 1, 1]
    promoted = Run(7, {}, 3, 0, 0.9, promoted_from=0)  # a moved-up trial takes no bracket's share
    assert hyperband.new_trial([*runs, promoted], ladder).epochs == 1


def test_the_best_third_of_a_rung_moves_up_once_and_the_others_stop_there():
    ladder = [1, 3, 9]
    runs = [Run(n, {"lr": n}, 1, 0, value) for n, value in enumerate([0.5, 0.9, 0.7, 0.2, 0.8])]
    assert hyperband.promotions(runs[:2], ladder, maximize=True) == []  # a third of 2 is no trial
    (up,) = hyperband.promotions(runs, ladder, maximize=True)
    assert (up.promoted_from, up.epochs, up.bracket, up.params) == (1, 3, 0, {"lr": 1})
    moved = [*runs, Run(5, {"lr": 1}, 3, 0, None, promoted_from=1)]
    assert hyperband.promotions(moved, ladder, maximize=True) == []  # trial 1 moved up already
    six = [*moved, Run(6, {"lr": 6}, 1, 0, 0.85)]  # two thirds of six: trial 6 joins trial 1
    assert [n.promoted_from for n in hyperband.promotions(six, ladder, maximize=True)] == [6]
    assert [n.promoted_from for n in hyperband.promotions(runs, ladder, maximize=False)] == [3]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["sweep.budget.minutes=0"],
            "Invalid config value sweep.budget.minutes=0.0: expected a number of minutes > 0",
        ),
        (
            ["sweep.budget.minutes=-5"],
            "Invalid config value sweep.budget.minutes=-5.0: expected a number of minutes > 0",
        ),
        (
            ["sweep.budget.minutes=inf"],
            "Invalid config value sweep.budget.minutes=inf: expected a number of minutes > 0",
        ),
        (
            ["sweep.pruner=hyperband", "sweep.min_epochs=4", "train.epochs=3"],
            "sweep.min_epochs=4: Hyperband's fewest epochs must be from 1 to train.epochs=3.",
        ),
        (
            ["sweep.pruner=hyperband", "train.epochs=choice(1,3)"],
            "sweep.params.train.epochs with sweep.pruner=hyperband: Hyperband gives each trial its epochs",
        ),
    ],
)
def test_bad_budgets_are_refused_before_any_trial(compose_cfg, overrides, message):
    cfg = compose_cfg("sweep=quick", *(o for o in overrides if "choice" not in o))
    with pytest.raises(KxError) as refused:
        plan(cfg, ["sweep=quick", *overrides])
    assert str(refused.value).startswith(message)


@pytest.mark.slow
def test_a_bad_time_budget_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "train.py"), "-m", "sweep=quick", "sweep.budget.minutes=soon"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("kx: error: ") and "sweep.budget.minutes=soon" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "mlflow.db").exists()


def _trial(start: float, end, state: str = "COMPLETE", recorded: bool = True) -> optuna.trial.FrozenTrial:
    t0 = datetime.datetime(2026, 1, 1)
    trial = optuna.trial.create_trial(
        state=getattr(optuna.trial.TrialState, state),
        value=0.5 if state == "COMPLETE" else None,
        user_attrs={"kx.seconds": 1.0} if recorded else {},
    )
    trial.datetime_start = t0 + datetime.timedelta(seconds=start)
    trial.datetime_complete = None if end is None else t0 + datetime.timedelta(seconds=end)
    return trial


def test_the_time_spent_is_the_studys_trials_wall_time_whoever_ran_them():
    now = datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=1000)
    two_workers = [_trial(0, 60), _trial(30, 90)]  # at once: counted once
    assert busy_seconds(two_workers, now) == 90
    resumed_later = [*two_workers, _trial(500, 560, "PRUNED")]  # the pause between runs is not counted
    assert busy_seconds(resumed_later, now) == 150
    running = [*resumed_later, _trial(900, None, "RUNNING", recorded=False)]
    assert busy_seconds(running, now) == 250
    crashed = [*resumed_later, _trial(600, 990, "FAIL", recorded=False)]  # failed for a dead worker
    assert busy_seconds(crashed, now) == 150


@pytest.mark.slow
def test_hyperband_stops_weak_trials_at_a_rung_and_the_best_trains_on_with_its_own_schedule(tmp_path):
    """Three one-epoch trials (rungs 1 and 3), then the best of them again with three epochs."""
    proc = train(
        tmp_path,
        "-m",
        "sweep=quick",
        *DIGITS,
        "train.epochs=3",
        "sweep.pruner=hyperband",
        "sweep.sampler=random",
        "sweep.seed=0",
        "sweep.budget.trials=4",
        "train.learning_rate=choice(0.00001,0.003,0.1)",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = study(tmp_path, "quick").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    first = trials[:3]
    best = max(first, key=lambda t: t.value)
    assert [t.user_attrs["kx.epochs"] for t in trials] == [1, 1, 1, 3]
    assert trials[3].user_attrs["kx.promoted_from"] == best.number and trials[3].params == best.params
    for trial in trials:  # each trial's schedule spans its own epochs: train.epochs is its budget
        config = yaml.safe_load((tmp_path / "sweep" / str(trial.number) / "config.yaml").read_text())
        assert config["train"]["epochs"] == trial.user_attrs["kx.epochs"]
    _, children = sweep_runs(tmp_path)
    assert [c.data.params["train.epochs"] for c in children] == ["1", "1", "1", "3"]
    assert f"trial {best.number} moves up to 3 epochs" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_spent_time_budget_stops_the_sweep_and_a_resume_starts_no_trial(tmp_path):
    # more epochs than the budget holds on any CPU, and nothing else that ends the trial before it
    never_done = ["train.epochs=5000", "train.early_stopping.enabled=false"]
    args = ["-m", "sweep=quick", *DIGITS, *never_done, "sweep.budget.minutes=0.2"]
    start = time.monotonic()
    proc = train(tmp_path, *args, timeout=300)
    assert time.monotonic() - start < 120 * busy(), proc.stderr[-3000:]
    assert "the sweep's time budget is spent (sweep.budget.minutes=0.2)" in proc.stdout + proc.stderr
    trials = study(tmp_path, "quick").trials
    assert len(trials) == 1 and trials[0].state.name == "PRUNED"
    assert "time budget (sweep.budget.minutes=0.2) was spent" in trials[0].user_attrs["kx.reason"]
    parent, children = sweep_runs(tmp_path)
    assert parent.info.status != "RUNNING"
    assert [(c.data.tags["kx.trial.state"], c.info.status) for c in children] == [("PRUNED", "KILLED")]
    again = train(tmp_path, *args, timeout=300)
    assert len(study(tmp_path, "quick").trials) == 1, again.stderr[-3000:]
    assert "the sweep's time budget is spent" in again.stdout + again.stderr


@pytest.mark.slow
def test_tuning_benchmark_quick_mode_compares_hyperband_and_random_search_within_a_time_budget(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    env["PYTHONPATH"] = str(PROJECT_DIR)
    proc = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "benchmarks" / "tuning.py"), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(
        r"^best val_acc after t minutes \(median of seeds 0; digits, mlp; .+ x \d+ .*load average",
        proc.stdout,
        re.M,
    )
    assert re.search(r"^t \(min\)\s+0\.1\s+0\.3\s+1$", proc.stdout, re.M), proc.stdout
    last = []
    for side in ("hyperband", "random"):
        row = re.search(rf"^{side}\s+((?:(?:0\.\d{{4}}|1\.0000|-)\s*){{3}})$", proc.stdout, re.M)
        assert row, proc.stdout
        last.append(row.group(1).split()[-1])
    assert any(value != "-" for value in last), proc.stdout  # a side finished a trial within the budget
