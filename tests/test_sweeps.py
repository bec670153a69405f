"""`train.py -m` end to end through kx's sweeper: real trials, the Optuna study and the MLflow store
queried back."""

import signal
from pathlib import Path

import optuna
import pytest

from tests.helpers.sweeps import TINY, assert_sweep_structure, start_train, study, sweep_runs, wait_for

pytestmark = pytest.mark.slow


def states(folder: Path, name: str):
    """The study's trial states in order."""
    return [t.state.name for t in study(folder, name).get_trials()]


def states_so_far(folder: Path, name: str):
    """The study's trial states while a sweep runs; none while its storage is being created."""
    if not (folder / "sweeps.db").exists():
        return []
    try:
        return states(folder, name)
    except Exception:  # noqa: BLE001 - no study or no tables yet: Optuna and SQLAlchemy errors alike
        return []


def test_tpe_sweep_two_trials_at_once(run_train, tmp_path):
    proc = run_train(
        "-m",
        "sweep=quick",
        *TINY,
        "sweep.budget.trials=3",
        "sweep.budget.parallel=2",
        "hydra.sweep.dir=sweep",
    )
    parent, children = assert_sweep_structure(tmp_path, range(3))
    assert states(tmp_path, "quick") == ["COMPLETE"] * 3
    assert children[0].info.end_time > children[1].info.start_time  # trials 0 and 1 ran side by side
    for child in children:
        inputs = {(d.dataset.name, d.tags[0].value) for d in child.inputs.dataset_inputs}
        assert inputs == {("synthetic-training", "training"), ("synthetic-validation", "validation")}
        assert 0.005 <= float(child.data.params["train.learning_rate"]) <= 0.2
        assert child.info.run_name.startswith(f"trial {child.data.tags['kx.trial.number']}: learning_rate=")
    assert parent.data.tags["kx.sweep.sampler"] == "tpe" and parent.info.run_name == "sweep quick"
    assert "best trial: " in proc.stdout and "retrain:   python train.py --config-dir" in proc.stdout
    assert f"/runs/{parent.info.run_id}?workflowType=machine_learning" in proc.stderr + proc.stdout
    for name in ("best_trial.yaml", "optimization_history.png", "param_importances.png"):
        assert (tmp_path / "sweep" / name).stat().st_size > 0


def test_killed_sweep_resumes_without_repeating_a_trial(tmp_path, run_train):
    args = ["-m", "sweep=quick", *TINY, "sweep.budget.trials=4"]
    sweep = start_train(tmp_path, *args, "hydra.sweep.dir=first")
    wait_for(lambda: states_so_far(tmp_path, "quick")[:3] == ["COMPLETE", "COMPLETE", "RUNNING"])
    sweep.send_signal(signal.SIGINT)  # Ctrl-C
    _, stderr = sweep.communicate(timeout=300)
    assert sweep.returncode == 130 and "rerun the same command to resume it" in stderr
    assert states(tmp_path, "quick") == ["COMPLETE", "COMPLETE", "FAIL"]
    parent, children = sweep_runs(tmp_path)
    assert parent.info.status == "KILLED" and len(children) == 3
    assert children[2].info.status == "KILLED" and children[2].data.tags["kx.trial.state"] == "FAIL"

    run_train(*args, "hydra.sweep.dir=second")
    assert states(tmp_path, "quick") == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    params = [t.params for t in study(tmp_path, "quick").get_trials()]
    assert params[3] not in params[:3]  # the resumed sampler does not replay the first draws
    assert sorted(p.name for p in (tmp_path / "second").iterdir() if p.is_dir()) == ["3"]
    resumed, _ = assert_sweep_structure(tmp_path, range(4))  # one at a time: the same structure
    assert resumed.info.run_id == parent.info.run_id


def test_grid_over_two_backends_passes_over_a_failing_trial(run_train, tmp_path):
    proc = run_train("-m", *TINY, "backend=torch,jax", "model.dropout=0.2,1.5")
    _, children = assert_sweep_structure(tmp_path, range(4))
    by_state = {}
    for child in children:
        by_state.setdefault(child.data.tags["kx.trial.state"], []).append(child)
    assert sorted(c.data.tags["kx.backend"] for c in by_state["COMPLETE"]) == ["jax", "torch"]
    assert len(by_state["FAIL"]) == 2
    for child in by_state["FAIL"]:
        assert "model.dropout=1.5" in child.data.tags["kx.trial.reason"]
        assert child.data.params["model.dropout"] == "1.5"
    assert "trials: 2 complete, 2 fail" in proc.stdout


def test_pruned_trial_stops_at_once_and_is_no_failure(run_train, tmp_path):
    seeded = optuna.create_study(
        study_name="quick", storage=f"sqlite:///{tmp_path / 'sweeps.db'}", direction="maximize"
    )
    for _ in range(2):  # two trials no real one can match: the median pruner stops the next one
        seeded.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={1: 1.0, 2: 1.0, 3: 1.0}))
    run_train(
        "-m",
        "sweep=quick",
        *TINY,
        "train.epochs=3",
        "sweep.pruner=median",
        "sweep.budget.trials=3",
        "hydra.sweep.dir=sweep",
    )
    trial = study(tmp_path, "quick").get_trials()[2]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [1]
    parent, children = sweep_runs(tmp_path)  # the seeded trials have no runs
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_pruned"] == 1
    assert len(children) == 1 and parent.data.metrics["trials_fail"] == 0
    child = children[0]
    assert (
        child.info.run_name.startswith("trial 2: ")
        and child.info.status == "KILLED"
        and child.data.tags["kx.trial.state"] == "PRUNED"
    )
    assert "pruned after epoch 1" in child.data.tags["kx.trial.reason"]
    assert not (tmp_path / "sweep" / "2" / "model").exists()


def test_too_many_failures_stop_the_sweep(run_train, tmp_path):
    # a config that composes and passes the up-front checks, then fails in every trial's engine
    proc = run_train(
        "-m",
        "sweep=quick",
        *TINY,
        "backend=mxnet",
        "backend.image_layout=channels_last",
        "sweep.budget.max_failure_rate=0.2",
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("kx: error: 2 of 2 trials failed")
    parent, children = sweep_runs(tmp_path)
    assert parent.info.status == "FAILED" and len(children) == 2
    assert all("is not supported by backend=mxnet" in c.data.tags["kx.trial.reason"] for c in children)
