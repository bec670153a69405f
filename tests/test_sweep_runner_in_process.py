"""kx.sweep.runner's loop in this process, its trials a stand-in for train.py that imports nothing and
ends at once: the study, the failed trial's reason, the summary and the best trial, without training
(tests/test_sweeps.py runs real sweeps end to end)."""

import json
import signal
import sys

import optuna
from omegaconf import open_dict

from kx.sweep import optuna_space, runner
from kx.sweep.runner import run_sweep
from kx.sweep.study import counted, quiet_optuna

# train.py's part in a sweep: read the overrides, write metrics.json into hydra.run.dir (the best
# val_acc is the learning rate), fail in one line at 0.3
TRIAL = """
import json, os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:])
rate = float(args["train.learning_rate"])
if rate == 0.3:
    sys.exit("kx: error: this trial fails")
os.makedirs(args["hydra.run.dir"], exist_ok=True)
with open(os.path.join(args["hydra.run.dir"], "metrics.json"), "w") as f:
    json.dump({"best": {"val_acc": rate, "val_loss": 1 - rate}}, f)
"""


def test_a_grid_runs_every_trial_records_a_failure_and_names_the_best(
    compose_cfg, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # the study's default store: ./sweeps.db
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.05)
    cfg = compose_cfg("model=mlp", "dataset=digits", "tracking.enabled=false")
    with open_dict(cfg):
        cfg.hydra = {"sweep": {"dir": str(tmp_path / "sweep")}}
    best = run_sweep(cfg, ["train.learning_rate=0.1,0.2,0.3"], [sys.executable, "-c", TRIAL])

    assert best is not None and best.params == {"train.learning_rate": 0.2} and best.value == 0.2
    (study,) = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'sweeps.db'}")
    trials = optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{tmp_path / 'sweeps.db'}")
    states = {t.params["train.learning_rate"]: t.state.name for t in trials.get_trials()}
    assert states == {0.1: "COMPLETE", 0.2: "COMPLETE", 0.3: "FAIL"}
    failed = next(t for t in trials.get_trials() if t.state.name == "FAIL")
    assert "this trial fails" in failed.user_attrs["kx.reason"]
    out = capsys.readouterr().out
    assert "trials: 2 complete, 1 fail" in out and "best trial:" in out
    assert "learning_rate: 0.2" in (tmp_path / "sweep" / "best_trial.yaml").read_text()
    assert json.loads((tmp_path / "sweep" / "1" / "metrics.json").read_text())["best"]["val_acc"] in (
        0.1,
        0.2,
    )


GRID = "choice(0.1, 0.2, 0.4, 0.5, 0.6, 0.7)"


def grid_file_rates(compose_cfg, tmp_path, *overrides: str):
    """Run the quick sweep file as a grid over six learning rates (``overrides`` added) in
    ``tmp_path``; every rate its study has run (surplus trials never run), sorted."""
    cfg = compose_cfg(
        "model=mlp",
        "dataset=digits",
        "tracking.enabled=false",
        "sweep=quick",
        "sweep.sampler=grid",
        *overrides,
    )
    with open_dict(cfg):
        cfg.hydra = {"sweep": {"dir": str(tmp_path / "sweep")}}
        cfg.sweep.params = {"train.learning_rate": GRID}
    run_sweep(cfg, [], [sys.executable, "-c", TRIAL])
    study = optuna.load_study(study_name="quick", storage=f"sqlite:///{tmp_path / 'sweeps.db'}")
    return sorted(
        t.params["train.learning_rate"] for t in study.get_trials() if not t.user_attrs.get("kx.surplus")
    )


def test_a_sweep_files_grid_runs_each_point_once(compose_cfg, tmp_path, monkeypatch):
    """A sweep file's grid is seeded (train.seed unless sweep.seed): every trial indexes one order."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.05)
    assert grid_file_rates(compose_cfg, tmp_path) == [0.1, 0.2, 0.4, 0.5, 0.6, 0.7]


def test_a_grid_study_resumed_with_another_seed_runs_the_points_it_has_not_run(
    compose_cfg, tmp_path, monkeypatch, caplog
):
    """The seed orders the grid: a resume after the sweep file's seed changed keeps the study's first
    order, and says so."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.05)
    grid_file_rates(compose_cfg, tmp_path, "sweep.seed=0", "sweep.budget.trials=3")
    rates = grid_file_rates(compose_cfg, tmp_path, "sweep.seed=42", "sweep.budget.trials=6")
    assert rates == [0.1, 0.2, 0.4, 0.5, 0.6, 0.7]
    assert "grid study quick keeps the order of its first seed, 0 (not 42)" in caplog.text


def another_worker_takes_the_last_place(race, method: str) -> None:
    """Once, as ``Sweep.method`` is about to run with one place left: another worker takes that place
    (its trial drawn and done) after this worker found it free and before its ask."""
    real, once = getattr(runner.Sweep, method), iter([True])

    def the_other_first(self, *args):
        if len(list(counted(self.trials()))) == self.plan.trials - 1 and next(once, False):
            with quiet_optuna():
                other = self.study.ask()
            for name, dist in self.distributions.items():
                optuna_space.suggest(other, name, dist)
            self.study.tell(other, other.params["train.learning_rate"])
        return real(self, *args)

    race.setattr(runner.Sweep, method, the_other_first)


def test_a_grid_point_whose_trial_came_as_a_surplus_runs_when_the_budget_grows(
    compose_cfg, tmp_path, monkeypatch
):
    """The trial this worker asks for after another took the last place is a surplus, never run.
    Optuna counts its grid point as visited; a resume with a larger budget still runs that point,
    and no point twice."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.05)
    with monkeypatch.context() as race:
        another_worker_takes_the_last_place(race, "launch")
        grid_file_rates(compose_cfg, tmp_path, "sweep.budget.trials=3")
    study = optuna.load_study(study_name="quick", storage=f"sqlite:///{tmp_path / 'sweeps.db'}")
    assert [t.user_attrs.get("kx.surplus", False) for t in study.get_trials()] == [False] * 3 + [True]

    grid_file_rates(compose_cfg, tmp_path, "sweep.budget.trials=6")
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert sorted(t.params["train.learning_rate"] for t in complete) == [0.1, 0.2, 0.4, 0.5, 0.6, 0.7]
    assert len(study.get_trials()) == 7  # the surplus and six places


def hyperband_trials(compose_cfg, tmp_path, budget: int):
    """Run (or resume) a Hyperband sweep of the quick file, rungs of 1 and 3 epochs, in ``tmp_path``;
    its study's trials."""
    cfg = compose_cfg(
        "model=mlp",
        "dataset=digits",
        "tracking.enabled=false",
        "sweep=quick",
        "sweep.pruner=hyperband",
        "sweep.min_epochs=1",
        "train.epochs=3",
        f"sweep.budget.trials={budget}",
    )
    with open_dict(cfg):
        cfg.hydra = {"sweep": {"dir": str(tmp_path / "sweep")}}
        cfg.sweep.params = {"train.learning_rate": GRID}
    run_sweep(cfg, [], [sys.executable, "-c", TRIAL])
    return optuna.load_study(study_name="quick", storage=f"sqlite:///{tmp_path / 'sweeps.db'}").get_trials()


def test_a_promotion_that_came_as_a_surplus_runs_when_the_budget_grows(compose_cfg, tmp_path, monkeypatch):
    """Hyperband's promotion is claimed once among workers; when the trial that carried it came as a
    surplus, a resume with a larger budget still promotes that trial."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.05)
    with monkeypatch.context() as race:
        another_worker_takes_the_last_place(race, "next_rung")
        (came_late,) = [
            t for t in hyperband_trials(compose_cfg, tmp_path, 4) if t.user_attrs.get("kx.surplus")
        ]
    best = came_late.user_attrs["kx.promoted_from"]

    trials = hyperband_trials(compose_cfg, tmp_path, 5)
    promoted = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("kx.epochs") == 3]
    assert [t.user_attrs.get("kx.promoted_from") for t in promoted] == [best]


def ends_not(*_) -> None:
    raise TimeoutError("the sweep did not end")


def test_a_trial_queued_past_the_full_budget_ends_as_a_surplus_and_claims_nothing(
    compose_cfg, tmp_path, monkeypatch
):
    """A queued trial gives a worker room to ask even when the budget is full; no promotion or grid
    point is queued then, so the sweep ends instead of queueing one surplus after another."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.05)
    hyperband_trials(compose_cfg, tmp_path, 3)
    study = optuna.load_study(study_name="quick", storage=f"sqlite:///{tmp_path / 'sweeps.db'}")
    study.enqueue_trial({"train.learning_rate": 0.5})  # e.g. a retry queued as the budget filled
    previous = signal.signal(signal.SIGALRM, ends_not)
    signal.alarm(120)
    try:
        trials = hyperband_trials(compose_cfg, tmp_path, 3)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert [t.user_attrs.get("kx.surplus", False) for t in trials] == [False] * 3 + [True]
    assert not any("kx.promoted_from" in t.user_attrs for t in trials)
