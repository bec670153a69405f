"""Several workers on one sweep: `train.py -m` processes sharing a study and its MLflow parent, and
every stop leaving the truth in the study and the runs."""

import multiprocessing
import signal
import time
from pathlib import Path

import optuna
import pytest

from kx.tracking.liveness import KILLED_TAG, PID_TAG
from tests.helpers.processes import busy
from tests.helpers.sweeps import TINY, assert_sweep_structure, start_train, study, sweep_runs, wait_for

FAST_BEATS = ["sweep.heartbeat_interval=1", "sweep.grace_period=4"]


def trial_states(folder: Path, name: str = "quick"):
    try:
        return [t.state.name for t in study(folder, name).get_trials()]
    except Exception:  # noqa: BLE001 - no study or tables yet
        return []


def _open_storage(url: str, start: float, queue) -> None:
    from kx.sweep.study import storage

    time.sleep(max(0.0, start - time.time()))
    try:
        storage(url)
        queue.put("ok")
    except Exception as err:  # noqa: BLE001 - the test reports it
        queue.put(f"{type(err).__name__}: {err}")


def _open_tracking(uri: str, start: float, queue) -> None:
    from omegaconf import OmegaConf

    from kx.tracking import open_run

    time.sleep(max(0.0, start - time.time()))
    try:
        open_run(OmegaConf.create({"uri": uri, "experiment": "kx", "mlflow_telemetry": False}))
        queue.put("ok")
    except Exception as err:  # noqa: BLE001 - the test reports it
        queue.put(f"{type(err).__name__}: {err}")


@pytest.mark.slow  # four processes racing: only real processes show it
@pytest.mark.parametrize(
    "opener,url", [(_open_storage, "sqlite:///{}/sweeps.db"), (_open_tracking, "sqlite:///{}/mlflow.db")]
)
def test_processes_opening_a_new_store_at_once_all_join(tmp_path, opener, url):
    """Defect 2: the losers of the race to create a new study storage or MLflow store join it."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    start = time.time() + 1.0
    procs = [context.Process(target=opener, args=(url.format(tmp_path), start, queue)) for _ in range(4)]
    for proc in procs:
        proc.start()
    outcomes = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert outcomes == ["ok"] * 4


def test_a_stale_trial_is_failed_and_queued_again_with_its_parameters(tmp_path):
    """A trial whose worker (on another host here) stopped beating: failed after the grace period,
    and the next ask runs it again."""
    from kx.sweep.study import WORKER_ATTR, counted, fail_stale, storage

    rdb = storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1, grace_period=1)
    shared = optuna.create_study(storage=rdb, study_name="s")
    trial = shared.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    rdb.record_heartbeat(trial._trial_id)
    trial.set_user_attr(WORKER_ATTR, {"kx.host": "elsewhere", "kx.pid": "1", "kx.process_start": ""})
    assert fail_stale(shared) == []
    time.sleep(2.5)
    assert [t.number for t in fail_stale(shared)] == [0]
    again = shared.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    assert again.number == 1 and again.params == trial.params
    assert [t.number for t in counted(shared.get_trials())] == [1]  # the retry takes its place


@pytest.mark.slow
def test_a_second_worker_joins_the_first(tmp_path):
    """Defects 1 and 5: a second worker started while the first runs trial 0 shares its study and
    parent run; the budget is the study's; no trial is failed, no run marked KILLED."""
    args = ["-m", "sweep=quick", *TINY, "sweep.budget.trials=4", *FAST_BEATS]
    first = start_train(tmp_path, *args, "hydra.sweep.dir=first")
    wait_for(lambda: trial_states(tmp_path)[:1] == ["RUNNING"])
    second = start_train(tmp_path, *args, "hydra.sweep.dir=second")
    outs = [proc.communicate(timeout=600) for proc in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    assert trial_states(tmp_path) == ["COMPLETE"] * 4
    ran = {p.name for d in ("first", "second") for p in (tmp_path / d).iterdir() if p.is_dir()}
    assert ran == {"0", "1", "2", "3"} and any((tmp_path / "second").iterdir())
    parent, children = assert_sweep_structure(tmp_path, range(4))
    assert KILLED_TAG not in parent.data.tags
    assert all(c.info.status == "FINISHED" for c in children)
    workers = {c.data.tags[PID_TAG] for c in children}
    assert len(workers) == 4  # each trial its own process
    assert "Warning" not in outs[0][1] + outs[1][1]


@pytest.mark.slow
def test_a_killed_worker_s_trial_is_retried_by_the_rerun(tmp_path, run_train):
    """Defects 4 and 5: kill -9 of the sweep mid-trial; the rerun fails that trial (its worker is
    gone), runs it again with the same parameters, the budget stays whole, and the parent run,
    resumed, is not marked KILLED by the rerun's own trials."""
    args = ["-m", "sweep=quick", *TINY, "sweep.budget.trials=3", *FAST_BEATS]
    sweep = start_train(tmp_path, *args, "hydra.sweep.dir=first")
    wait_for(lambda: trial_states(tmp_path)[:2] == ["COMPLETE", "RUNNING"])
    sweep.send_signal(signal.SIGKILL)
    sweep.communicate(timeout=60)
    run_train(*args, "hydra.sweep.dir=second")
    trials = study(tmp_path, "quick").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].params == trials[1].params  # the retry
    parent, children = sweep_runs(tmp_path)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_complete"] == 3
    assert KILLED_TAG not in parent.data.tags  # defect 5: the rerun owns the parent, its trials leave it be
    killed = [c for c in children if c.data.tags["kx.trial.number"] == "1"][0]
    assert killed.info.status == "KILLED" and killed.data.tags["kx.trial.state"] == "FAIL"
    assert "retried as trial 2" in killed.data.tags["kx.trial.reason"]


@pytest.mark.slow
def test_ctrl_c_after_the_export_keeps_the_trial_complete(tmp_path):
    """Defect 3: Ctrl-C while a trial logs its exported model: the trial is COMPLETE, its run KILLED."""
    sweep = start_train(tmp_path, "-m", "sweep=quick", *TINY, "sweep.budget.trials=2", "hydra.sweep.dir=s")

    def exported() -> bool:
        try:
            return any("kx.exported" in t.user_attrs for t in study(tmp_path, "quick").get_trials())
        except Exception:  # noqa: BLE001 - no study yet
            return False

    deadline = time.monotonic() + 300
    while not exported():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    sweep.send_signal(signal.SIGINT)
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, stderr
    trial = study(tmp_path, "quick").get_trials()[0]
    assert trial.state.name == "COMPLETE" and trial.value is not None
    _, children = sweep_runs(tmp_path)
    assert children[0].data.tags["kx.trial.state"] == "COMPLETE"
    assert children[0].info.status in ("KILLED", "FINISHED")


@pytest.mark.slow
def test_sigterm_at_start_up_ends_the_run_killed_within_seconds(tmp_path):
    """Defect 3: SIGTERM before training (here once the MLflow run exists) ends the run KILLED."""
    from tests.helpers.sweeps import mlflow_client

    proc = start_train(tmp_path, *TINY, "train.epochs=50")
    for line in proc.stdout:  # the data is loaded once the run exists (querying a new store races)
        if " training / " in line:
            break
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and time.monotonic() - sent < 30 * busy(), stderr
    assert "kx: error: Stopped by SIGTERM; what was written so far is in " in stderr
    client = mlflow_client(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("kx").experiment_id])
    assert run.info.status == "KILLED"


def _worker_of_a_running_trial(url: str, pid: int) -> bool:
    try:
        trials = optuna.load_study(study_name="quick", storage=url).get_trials()
    except Exception:  # noqa: BLE001 - no study yet
        return False
    done = sum(t.state.name == "COMPLETE" for t in trials)
    mine = [
        t
        for t in trials
        if t.state.name == "RUNNING" and t.user_attrs.get("kx.worker", {}).get(PID_TAG) == str(pid)
    ]
    return done >= 1 and bool(mine)


@pytest.mark.slow
def test_three_workers_share_one_postgresql_study(tmp_path):
    """Three worker processes on one PostgreSQL study: the budget's trials exactly, none repeated or
    lost, one parent; a worker killed with -9 mid-trial has its trial failed and run again."""
    from tests.helpers.postgres import postgres_server

    with postgres_server() as url:
        args = ["-m", "sweep=quick", *TINY, "sweep.budget.trials=6", f"sweep.storage={url}", *FAST_BEATS]
        workers = [start_train(tmp_path, *args, f"hydra.sweep.dir=w{i}") for i in range(3)]
        wait_for(lambda: _worker_of_a_running_trial(url, workers[2].pid))
        workers[2].send_signal(signal.SIGKILL)
        outs = [proc.communicate(timeout=600) for proc in workers]
        assert [w.returncode for w in workers] == [0, 0, -signal.SIGKILL], outs[:2]
        trials = [
            t
            for t in optuna.load_study(study_name="quick", storage=url).get_trials()
            if not t.user_attrs.get("kx.surplus")
        ]
    failed = [t for t in trials if t.state.name == "FAIL"]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 6 and len(failed) == 1 and len(trials) == 7
    assert failed[0].params in [t.params for t in complete]  # run again by a survivor
    assert len({repr(sorted(t.params.items())) for t in complete}) == 6  # none repeated
    parent, children = sweep_runs(tmp_path)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_complete"] == 6
    states = sorted(c.data.tags.get("kx.trial.state", "") for c in children)
    assert states == ["COMPLETE"] * 6 + ["FAIL"]
    killed = [c for c in children if c.data.tags["kx.trial.state"] == "FAIL"][0]
    assert killed.info.status == "KILLED" and "retried as trial" in killed.data.tags["kx.trial.reason"]


def test_the_private_optuna_storage_kx_reads_keeps_the_heartbeat_calls(tmp_path):
    """Pins ``Study._storage`` (runner.py, study.py): Optuna's Study has no public accessor for its storage,
    and its own ``fail_stale_trials`` reads it the same way."""
    import optuna

    from kx.sweep.study import storage

    study = optuna.create_study(storage=storage(f"sqlite:///{tmp_path / 's.db'}", 5, 20))
    assert callable(study._storage.record_heartbeat)
    assert study._storage.get_heartbeat_stale_trial_callback() is not None
