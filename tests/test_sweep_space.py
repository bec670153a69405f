"""The sweep file's grammar in Optuna's terms, the sweep plan, and the report, without training."""

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import open_dict
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.kx_sweeper.kx_sweeper import KxSweeper
from kx import process, quiet
from kx.config.objective import Objective
from kx.errors import KxError
from kx.run_config import compose
from kx.sweep import optuna_space
from kx.sweep import study as study_module
from kx.sweep.plan import plan
from kx.sweep.report import TrialResult, summarize
from kx.sweep.space import SpaceError, parse_param
from kx.sweep.study import open_study
from kx.sweep.trial import TrialLink
from tests.helpers.sweeps import PROJECT_DIR, mlflow_client, wait_for


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("choice(sgd, adam)", CategoricalDistribution(["sgd", "adam"])),
        ("16,32,64", CategoricalDistribution([16, 32, 64])),
        ("choice(true, false, 0.5)", CategoricalDistribution([True, False, 0.5])),
        ("range(10, 40, 10)", IntDistribution(10, 30, step=10)),
        ("range(1, 4)", IntDistribution(1, 3)),
        ("int(interval(32, 1024))", IntDistribution(32, 1024)),
        ("interval(0.2, 0.6)", FloatDistribution(0.2, 0.6)),
        ("tag(log, interval(0.001, 0.1))", FloatDistribution(0.001, 0.1, log=True)),
        ("tag(log, int(interval(8, 512)))", IntDistribution(8, 512, log=True)),
    ],
)
def test_every_range_kind_becomes_its_optuna_distribution(expression, expected):
    assert optuna_space.distribution(parse_param("key", expression)) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("choice([1,2],[3,4])", "choice values must be numbers, strings or booleans"),
        ("tag(log, range(1, 100, 2))", "a log-scaled range needs step 1"),
        ("interval(5, 1)", "interval(lo,hi) needs lo < hi"),
        ("range(0.5, 2)", "range() takes integers"),
        ("tag(log, interval(0, 1))", "a log scale needs a lower bound > 0"),
        ("tag(log, choice(1, 2))", "tag(log, ...) applies to an interval or a range"),
        ("choice(1, 1)", "a choice lists a value twice"),
        ("interval(1", "is not in Hydra's sweep grammar"),
    ],
)
def test_every_rejection_is_one_line_naming_the_parameter(expression, message):
    with pytest.raises(SpaceError) as err:
        optuna_space.distribution(parse_param("train.x", expression))
    assert message in str(err.value) and "sweep.params.train.x=" in str(err.value)
    assert "\n" not in str(err.value)


def test_grid_needs_listed_values():
    assert optuna_space.grid([parse_param("a", "range(1, 6, 2)"), parse_param("b", "x,y")]) == {
        "a": [1, 3, 5],
        "b": ["x", "y"],
    }
    with pytest.raises(SpaceError, match="sampler=grid needs choice"):
        optuna_space.grid([parse_param("a", "interval(0.1, 0.2)")])


def test_plan_merges_the_sweep_file_and_command_line_sweeps(compose_cfg):
    cfg = compose_cfg("sweep=quick", "sweep.budget.parallel=2")
    swept = plan(cfg, ["sweep=quick", "model.dense_units=8,16", "train.epochs=2"])
    assert [p.key for p in swept.swept] == ["train.learning_rate", "model.dense_units", "model.dropout"]
    assert swept.space[1].choices == (8, 16) and swept.parallel == 2 and swept.trials == 6
    assert swept.base_overrides == ["sweep=quick", "train.epochs=2"] and swept.sampler == "tpe"
    grid = plan(compose_cfg(), ["backend=torch,jax", "model.dropout=0.1,0.2,0.3"])
    assert grid.sampler == "grid" and grid.trials == 6 and grid.study.startswith("grid-")


def test_resuming_a_study_with_another_space_is_refused(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    open_study(plan(compose_cfg("sweep=quick"), ["sweep=quick"]))
    changed = plan(compose_cfg("sweep=quick"), ["sweep=quick", "model.dense_units=8,16"])
    with pytest.raises(KxError, match="Study 'quick' in .* was run with another search space") as err:
        open_study(changed)
    assert "sweep.study=<new name>" in str(err.value) and "\n" not in str(err.value)


def study_names(path: Path) -> List[str]:
    """The studies in the SQLite storage at ``path``; none while it is being created."""
    try:
        return optuna.get_all_study_names(f"sqlite:///{path}") if path.exists() else []
    except Exception:  # noqa: BLE001 - its tables are being created at this moment
        return []


def test_a_worker_joining_as_another_creates_the_study_runs_the_creators_grid_order(
    compose_cfg, tmp_path, monkeypatch
):
    """Two workers start one grid study at the same moment, their config files' seeds differ: the one
    that joins waits for the creator's record and runs the creator's order (each point once)."""
    monkeypatch.chdir(tmp_path)
    found = study_module._found

    def recorded_late(study, the_plan):  # the creator records the study a moment after creating it
        time.sleep(3)
        found(study, the_plan)

    monkeypatch.setattr(study_module, "_found", recorded_late)

    def grid_plan(seed: int):
        cfg = compose_cfg("sweep=quick", "sweep.sampler=grid", f"sweep.seed={seed}")
        with open_dict(cfg):
            cfg.sweep.params = {"train.learning_rate": "choice(0.1, 0.2, 0.4)"}
        return plan(cfg, [])

    first, second = grid_plan(0), grid_plan(42)
    created = []
    creator = threading.Thread(target=lambda: created.append(open_study(first)[1]))
    creator.start()
    wait_for(lambda: "quick" in study_names(tmp_path / "sweeps.db"))  # not recorded for 2-3 s
    _, joined = open_study(second)
    creator.join()
    assert [created[0].seed, joined.seed] == [0, 0]


def test_a_study_whose_creator_stopped_before_recording_it_is_founded_by_the_next_worker(
    compose_cfg, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study_module, "FOUNDING_SECONDS", 0.3)
    optuna.create_study(study_name="quick", storage=f"sqlite:///{tmp_path / 'sweeps.db'}")  # and stopped
    open_study(plan(compose_cfg("sweep=quick"), ["sweep=quick"]))
    changed = plan(compose_cfg("sweep=quick"), ["sweep=quick", "model.dense_units=8,16"])
    with pytest.raises(KxError, match="was run with another search space"):
        open_study(changed)


BAD_SWEEPS = [
    (["sweep=quick", "sweep.sampler=grid"], "sampler=grid needs choice(...) or range"),
    (["sweep=quick,fashion"], "pick one sweep file with sweep=<name>"),
    (["sweep=quick", "sweep.seed=-3"], "Invalid config value sweep.seed=-3: expected an integer from 0"),
    (
        ["sweep.storage=sqlite:///s.db"],
        "sweep.storage=sqlite:///s.db: choose a sweep first with "
        "sweep=<name> (one of fashion, fashion_local, quick)",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_SWEEPS)
def test_bad_sweep_commands_fail_in_one_line_before_any_trial(
    check_train, args, message, monkeypatch, capsys
):
    """``train.py -m ARGS`` in this process: its own checks, then kx's sweeper with the config Hydra
    composes for a multirun (a sweep override of a group leaves the group's default)."""
    monkeypatch.setattr(process, "quiet_libraries", lambda: None)  # the pytest process's settings stay
    monkeypatch.setattr(quiet, "quiet_console", lambda: None)
    proc = check_train("-m", *args)
    if proc.returncode == 0:
        sweeper = KxSweeper()
        plain = [
            o.input_line for o in OverridesParser.create().parse_overrides(args) if not o.is_sweep_override()
        ]
        sweeper.config = compose(plain, with_hydra=True)
        sweeper.script = str(PROJECT_DIR / "train.py")
        with pytest.raises(SystemExit) as done:
            sweeper.sweep(args)
        proc = subprocess.CompletedProcess(args, done.value.code, *capsys.readouterr())
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("kx: error: ") and message in proc.stderr and proc.stderr.count("\n") == 1
    assert not Path("mlflow.db").exists() and not Path("sweeps.db").exists()


@pytest.mark.slow  # the same through Hydra's multirun in train.py processes
def test_bad_sweep_commands_fail_in_one_line_before_any_trial_in_train_py(tmp_path):
    for args, message in BAD_SWEEPS:
        proc = subprocess.run(
            [sys.executable, str(PROJECT_DIR / "train.py"), "-m", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().startswith("kx: error: ") and message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "mlflow.db").exists()


def test_a_trial_reports_to_its_study_from_another_process(tmp_path):
    """Pins optuna.trial.Trial(study, trial_id), how a trial process reports to the sweep's trial."""
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    for _ in range(2):  # kx's median pruner starts after two trials
        study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values={1: 0.9}))
    asked = study.ask()
    trial = TrialLink(storage, "s", asked._trial_id, asked.number, "median").optuna_trial()
    trial.report(0.1, step=1)
    assert trial.should_prune()
    assert study.get_trials()[asked.number].intermediate_values == {1: 0.1}


def test_summary_on_the_parent_run(tmp_path, mlflow_store, monkeypatch, train_here):
    from kx.tracking import MLflowRun

    monkeypatch.chdir(tmp_path)  # the store's artifacts (./mlruns) go to the test's folder
    parent = MLflowRun(mlflow_store, "kx")
    parent.start("sweep", {}, None)
    trials = [
        TrialResult(0, {"train.learning_rate": 0.01, "model=dense_units": 32}, "COMPLETE", 0.8, 3.0),
        TrialResult(
            1,
            {"train.learning_rate": 0.1, "model=dense_units": 64},
            "COMPLETE",
            0.9,
            4.0,
            run_id="abc",
            output="out/1",
            model="out/1/model",
        ),
        TrialResult(2, {"train.learning_rate": 0.05, "model=dense_units": 16}, "PRUNED", None, 1.0),
        TrialResult(3, {"train.learning_rate": 0.02, "model=dense_units": 16}, "FAIL", reason="boom"),
    ]
    trials = [
        TrialResult(
            t.number,
            {
                "train.learning_rate": t.params["train.learning_rate"],
                "model.dense_units": t.params["model=dense_units"],
            },
            t.state,
            t.value,
            t.seconds,
            t.run_id,
            t.output,
            t.model,
            t.reason,
        )
        for t in trials
    ]
    best = summarize(parent, Objective("val_acc", "maximize"), trials, tmp_path / "sweep", ["model=mlp"])
    assert best.number == 1
    run = mlflow_client(tmp_path).get_run(parent.run_id)
    assert run.data.metrics["best_val_acc"] == 0.9
    assert (
        run.data.metrics["trials_complete"],
        run.data.metrics["trials_pruned"],
        run.data.metrics["trials_fail"],
    ) == (2, 1, 1)
    assert run.data.tags["kx.best.train.learning_rate"] == "0.1" and run.data.tags["kx.best_run_id"] == "abc"
    artifacts = {a.path for a in mlflow_client(tmp_path).list_artifacts(parent.run_id)}
    assert {
        "best_trial.yaml",
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinates.html",
    } <= artifacts
    assert "[Compare the trial side by side]" in run.data.tags["mlflow.note.content"]  # trial 1 has a run
    proc = train_here("--config-dir", str(tmp_path / "sweep"), "--config-name", "best_trial", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    retrained = proc.stdout
    assert "learning_rate: 0.1\n" in retrained and "dense_units: 64\n" in retrained
    assert "name: mlp" in retrained


def test_sagemaker_source_carries_the_sweeper_config_yaml_names(tmp_path):
    """conf/config.yaml selects hydra/sweeper=kx, so every job's train.py needs the plugin to compose."""
    import tarfile

    from kx.sagemaker.job_request import package_source

    with tarfile.open(package_source(tmp_path, "tensorflow")) as tar:
        assert "hydra_plugins/kx_sweeper/kx_sweeper.py" in tar.getnames()


@pytest.mark.parametrize(
    "sampler, built",
    [
        ("tpe", optuna.samplers.TPESampler),
        ("random", optuna.samplers.RandomSampler),
        ("grid", optuna.samplers.GridSampler),
    ],
)
def test_each_sampler_name_builds_its_optuna_sampler_from_its_target(sampler, built):
    """sweep.sampler's names stand for configs with a ``_target_`` (Hydra's Optuna sweeper's pattern)."""
    space = [parse_param("model.dense_units", "choice(32, 64)"), parse_param("train.epochs", "range(1, 3)")]
    made = optuna_space.sampler(sampler, space, 7, 30)
    assert isinstance(made, built)
    if sampler == "tpe":  # a third of the budget at random
        assert made._n_startup_trials == 10
    if sampler == "grid":
        assert made._search_space == {"model.dense_units": [32, 64], "train.epochs": [1, 2]}


@pytest.mark.parametrize(
    "pruner, built",
    [
        ("none", optuna.pruners.NopPruner),
        ("median", optuna.pruners.MedianPruner),
        ("hyperband", optuna.pruners.NopPruner),
    ],
)
def test_each_pruner_name_builds_its_optuna_pruner_from_its_target(pruner, built):
    assert isinstance(optuna_space.pruner(pruner), built)


def test_an_unknown_sampler_is_one_line_naming_the_known_ones(compose_cfg):
    from kx.config import ConfigError

    with pytest.raises(ConfigError, match=r"sweep.sampler=cmaes: expected one of tpe, random, grid") as err:
        compose_cfg("sweep=quick", "sweep.sampler=cmaes")
    assert "\n" not in str(err.value)


def runner_draws(kind: str, space: list, seed: int, trials: int) -> list:
    """The parameters a sweep's first ``trials`` trials get, drawn as kx's sweep runner draws them: the
    study opens with the sweep's sampler, and each ask is followed by that trial's own sampler."""
    dists = [(p.key, optuna_space.distribution(p)) for p in space]
    study = optuna.create_study(direction="maximize", sampler=optuna_space.sampler(kind, space, seed, trials))
    found = []
    for number in range(trials):
        trial = study.ask()
        study.sampler = optuna_space.sampler(kind, space, optuna_space.draw_seed(kind, seed, number), trials)
        found.append(tuple(optuna_space.suggest(trial, key, dist) for key, dist in dists))
        study.tell(trial, 0.5)
    return found


def test_each_sweep_seed_draws_its_own_trials_and_draws_them_again_the_same():
    """``sweep.seed=1`` is a sequence of its own, not ``sweep.seed=0``'s draws one trial later."""
    space = [parse_param("train.learning_rate", "tag(log, interval(0.001, 0.1))")]
    zero, one = runner_draws("random", space, 0, 20), runner_draws("random", space, 1, 20)
    assert zero == runner_draws("random", space, 0, 20) and len(set(zero)) == 20  # a seed repeats
    assert not set(zero) & set(one)  # no trial of seed 1 is one of seed 0's


def test_a_sweep_files_grid_runs_each_point_once_whatever_its_seed():
    space = [parse_param("model.dense_units", "choice(32, 64, 128, 256)"), parse_param("x", "choice(a, b)")]
    every = sorted((units, x) for units in (32, 64, 128, 256) for x in ("a", "b"))
    for seed in (0, 42):  # a sweep file's seed is train.seed's default unless sweep.seed sets it
        assert sorted(runner_draws("grid", space, seed, 8)) == every


def test_a_seed_outside_what_the_samplers_take_is_one_line(compose_cfg):
    with pytest.raises(KxError, match=r"^Invalid config value train.seed=-1: expected an integer from 0"):
        plan(compose_cfg("sweep=quick", "train.seed=-1"), ["sweep=quick"])
    with pytest.raises(KxError, match=r"^Invalid config value sweep.seed=2147483648: expected an integer"):
        plan(compose_cfg("sweep=quick", "sweep.seed=2147483648"), ["sweep=quick"])
