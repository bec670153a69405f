"""The sweep's Optuna study, shared by every worker: created or joined in its storage, and read back.

Any number of ``train.py -m`` processes (workers, on one machine or several) may run the same sweep
against one storage. Each worker records a heartbeat for the trials it runs; a trial whose worker
stopped beating for ``sweep.grace_period`` seconds is failed by the next worker that looks and
queued again with the same parameters (Optuna's ``RetryHeartbeatStaleTrialCallback``). The budget is
the study's: a trial counts unless it was such an interrupted one (it was retried) or a surplus
trial a worker asked for while another took the last place. A study must keep its identity (search
space, objective, the overrides its trials share): another one is refused in one line.
"""

import contextlib
import dataclasses
import datetime
import logging
import time
import warnings
from typing import Any, Iterator, List, Optional, Tuple

from kx import process
from kx.errors import KxError
from kx.sweep import optuna_space
from kx.sweep.hyperband import EPOCHS_ATTR
from kx.sweep.plan import SweepPlan, identity, identity_lines
from kx.sweep.report import TrialResult
from kx.tracking.liveness import owner_alive
from kx.tracking.secrets import redact
from kx.tracking.store_lock import sqlite_turn

IDENTITY_ATTR = "kx.identity"
PARENT_RUN_ATTR = "kx.mlflow_parent_run_id"
WORKER_ATTR = "kx.worker"  # the process running the trial (kx.tracking.liveness.process_tags)
SURPLUS_ATTR = "kx.surplus"  # a trial asked for after the budget was taken: never run
GRID_SEED_ATTR = "kx.grid_seed"  # the seed whose shuffle a grid study's trial numbers index
SECONDS_ATTR = "kx.seconds"  # a trial's run time, recorded by its worker when it ended
INTERRUPTED = "the sweep stopped while this trial ran"
MAX_RETRY = 3  # how often a trial whose worker stopped is queued again
FOUNDING_SECONDS = 10.0  # how long a joining worker waits for the study's creator to record it
OPEN_TRIES = 8  # several workers creating one new storage race for its tables: the losers retry

log = logging.getLogger("kx")


def storage(url: str, heartbeat_interval: Optional[int] = None, grace_period: Optional[int] = None) -> Any:
    """Optuna's RDB storage, with heartbeats when ``heartbeat_interval`` is given. SQLite waits for
    the lock (trial processes write to it too); a worker that lost the race to create the tables
    of a new storage opens it again and joins."""
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {"pool_pre_ping": True}
    heartbeat = {}
    if heartbeat_interval:
        with quiet_optuna():
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        heartbeat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "heartbeat_stale_trial_callback": retry,
        }
    for attempt in range(OPEN_TRIES):
        try:
            with quiet_optuna(), sqlite_turn(url):
                return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, **heartbeat)
        except Exception as err:  # noqa: BLE001 - a race, a bad URL or an unreachable database
            if attempt == OPEN_TRIES - 1 or not _creation_race(err):
                raise KxError(
                    f"Cannot open the sweep storage sweep.storage={redact(url)!r} "
                    f"({type(err).__name__}: {redact(str(err).splitlines()[0])}); give a "
                    "database URL kx can reach and write, e.g. sqlite:///sweeps.db or "
                    "postgresql+psycopg://USER:PASSWORD@HOST/DB."
                ) from None
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _creation_race(err: Exception) -> bool:
    """Errors another process creating the same tables at this moment causes."""
    text = str(err).lower()
    return type(err).__name__ in ("IntegrityError", "OperationalError", "ProgrammingError") and any(
        words in text
        for words in ("unique", "already exists", "duplicate", "locked", "no such table", "alembic")
    )


class quiet_optuna(warnings.catch_warnings):
    """Optuna's warnings that heartbeats are experimental and meant for ``optimize()``: kx records
    the heartbeats of its ask/tell trials itself."""

    def __enter__(self) -> Any:
        import optuna

        entered = super().__enter__()
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return entered


def open_study(plan: SweepPlan) -> Tuple[Any, SweepPlan]:
    """Create the plan's study or join it (its identity checked); return it and the plan as the study
    runs it (:func:`_grid_order`). Its sampler serves the first trial's
    :meth:`~optuna.study.Study.ask`; each trial's draw is seeded by the sweep runner."""
    import optuna

    process.quiet_optuna_logs()
    rdb = storage(plan.storage, plan.heartbeat_interval, plan.grace_period)
    try:  # the storage creates a study's name once: the worker that did records what the study is
        study = optuna.create_study(storage=rdb, study_name=plan.study, direction=plan.goal.direction)
        _found(study, plan)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=plan.study, storage=rdb)
        _wait_for_founding(study, plan)
    _check_identity(study, plan)
    plan = _grid_order(study, plan)
    loaded = optuna.load_study(
        study_name=plan.study,
        storage=rdb,
        pruner=optuna_space.pruner(plan.pruner),
        sampler=optuna_space.sampler(plan.sampler, plan.space, plan.seed, plan.trials),
    )
    return loaded, plan


def _grid_order(study: Any, plan: SweepPlan) -> SweepPlan:
    """The plan with the seed its grid study began with. Optuna's grid sampler gives trial n the
    n-th point of the grid as its seed shuffles it, so a resume after the sweep file's (or
    ``train.seed``'s) seed changed would run some points again and never run others. (A seed on the
    command line is part of the study's identity.)"""
    if plan.sampler != "grid" or plan.seed is None:
        return plan
    kept = study.user_attrs.get(GRID_SEED_ATTR)
    if kept is None:  # a study founded before kx recorded its grid's seed
        study.set_user_attr(GRID_SEED_ATTR, plan.seed)
        return plan
    if int(kept) != plan.seed:
        log.warning(
            "grid study %s keeps the order of its first seed, %s (not %s)", plan.study, kept, plan.seed
        )
    return dataclasses.replace(plan, seed=int(kept))


def fail_stale(study: Any) -> List[Any]:
    """Fail the trials whose worker stopped beating (each is queued again); return them."""
    import optuna

    before = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))}
    with quiet_optuna():
        optuna.storages.fail_stale_trials(study)
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    return [t for t in failed if t.number not in before]


def fail_orphaned(study: Any, grace_period: int) -> List[Any]:
    """Fail the running trials whose worker is a process on this host that has ended (queued again
    like a stale trial, without waiting for the grace period), and those left running without any
    heartbeat (by an older kx, or a worker that died before its first beat) once they are
    ``grace_period`` old."""
    import optuna

    now = datetime.datetime.now()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        old = trial.datetime_start and (now - trial.datetime_start).total_seconds() > grace_period
        if not (worker and owner_alive(worker) is False) and (worker or not old):
            continue
        try:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            continue  # another worker was first
        # Study._storage: no public accessor (as in Optuna's fail_stale_trials); pinned by a test
        retry = study._storage.get_heartbeat_stale_trial_callback() if worker else None
        if retry is not None:
            with quiet_optuna():
                retry(study, study.get_trials(deepcopy=True)[trial.number])
        failed.append(trial)
    return failed


def _found(study: Any, plan: SweepPlan) -> None:
    """Record what the study is: its grid's seed (:func:`_grid_order`), then its identity, so that
    once the identity is there, both are."""
    if plan.sampler == "grid" and plan.seed is not None:
        study.set_user_attr(GRID_SEED_ATTR, plan.seed)
    study.set_user_attr(IDENTITY_ATTR, identity(plan))


def _wait_for_founding(study: Any, plan: SweepPlan) -> None:
    """Wait until the worker that created the study has recorded what it is: a worker joining at
    that moment is checked against the creator's identity and runs its grid order, not its own.
    A study made outside kx (it has trials, which kx asks for only once the study is recorded) is
    founded at once; one whose creator stopped before recording it, after ``FOUNDING_SECONDS``."""
    deadline = time.monotonic() + FOUNDING_SECONDS
    while IDENTITY_ATTR not in study.user_attrs:
        if study.get_trials(deepcopy=False) or time.monotonic() > deadline:
            _found(study, plan)
            return
        time.sleep(0.1)


def _check_identity(study: Any, plan: SweepPlan) -> None:
    stored = study.user_attrs[IDENTITY_ATTR]
    wanted = identity(plan)
    if identity_lines(stored) != identity_lines(wanted):
        raise KxError(
            f"Study {plan.study!r} in {redact(plan.storage)} was run with another search space, "
            f"objective or overrides ({_difference(stored, wanted)}); resume it with the same "
            "command, or start a new study with sweep.study=<new name>."
        )


def _difference(stored: str, wanted: str) -> str:
    before, now = identity_lines(stored), identity_lines(wanted)
    gone = [line for line in before if line not in now]
    new = [line for line in now if line not in before]
    return f"was {'; '.join(gone) or 'nothing more'}, now {'; '.join(new) or 'nothing more'}"


def retried(trials: List[Any]) -> dict:
    """Trial number -> the number of the trial that retries it (for trials failed by heartbeat)."""
    return {
        t.system_attrs["retry_history"][-1]: t.number for t in trials if t.system_attrs.get("retry_history")
    }


def counted(trials: List[Any]) -> Iterator[Any]:
    """The trials that take a place in the budget, in order: all but retried and surplus ones."""
    again = retried(trials)
    for t in sorted(trials, key=lambda t: t.number):
        if t.number not in again and not t.user_attrs.get(SURPLUS_ATTR):
            yield t


def busy_seconds(trials: List[Any], now: Optional[datetime.datetime] = None) -> float:
    """The study's spent time, read from its storage: the wall time during which at least one of
    its trials ran, whichever worker ran it (trials at once count once; the pauses between resumed
    runs do not count). A running trial counts up to ``now``; an ended one when its worker recorded
    it (``kx.seconds``): a trial failed for a crashed worker has no known end and does not count."""
    now = now or datetime.datetime.now()
    spans = sorted(
        (t.datetime_start, now if t.state.name == "RUNNING" else t.datetime_complete)
        for t in trials
        if t.datetime_start and (t.state.name == "RUNNING" or SECONDS_ATTR in t.user_attrs)
    )
    total, reached = 0.0, None
    for start, end in spans:
        start = max(start, reached) if reached else start
        if end > start:
            total += (end - start).total_seconds()
        reached = max(end, reached) if reached else end
    return total


def claim(plan: SweepPlan, name: str) -> bool:
    """Claim ``name`` in the study's storage, once among all workers until :func:`release`: True for
    the one that did. (A study's name is unique in its storage: creating one is the storage's own
    atomic claim.)"""
    import optuna

    try:
        optuna.create_study(storage=storage(plan.storage), study_name=name)
    except optuna.exceptions.DuplicatedStudyError:
        return False
    return True


def release(plan: SweepPlan, name: str) -> None:
    """Give up the claim ``name`` (:func:`claim`), so that the next worker that tries takes it."""
    import optuna

    with contextlib.suppress(KeyError):  # released already
        optuna.delete_study(study_name=name, storage=storage(plan.storage))


def results(study: Any) -> List[TrialResult]:
    """Every trial of the study as the report's records, in order (surplus trials left out)."""
    trials = study.get_trials(deepcopy=False)
    again = retried(trials)
    ordered = sorted(trials, key=lambda t: t.number)
    return [result(t, again.get(t.number)) for t in ordered if not t.user_attrs.get(SURPLUS_ATTR)]


def result(trial: Any, retried_as: Optional[int] = None) -> TrialResult:
    attrs = trial.user_attrs
    seconds = attrs.get(SECONDS_ATTR)
    if seconds is None and trial.duration is not None:
        seconds = trial.duration.total_seconds()
    reason = attrs.get("kx.reason")
    if retried_as is not None:
        reason = stale_reason(retried_as)
    elif trial.state.name == "FAIL" and reason is None:
        reason = INTERRUPTED
    params = dict(trial.params)
    if EPOCHS_ATTR in attrs:  # Hyperband's budget for this trial: its retrain command needs it
        params["train.epochs"] = attrs[EPOCHS_ATTR]
    return TrialResult(
        number=trial.number,
        params=params,
        state=trial.state.name,
        value=trial.value,
        seconds=seconds,
        run_id=attrs.get("kx.run_id"),
        output=attrs.get("kx.output"),
        model=attrs.get("kx.model"),
        reason=reason,
    )


def stale_reason(retried_as: Optional[int]) -> str:
    again = f"; retried as trial {retried_as}" if retried_as is not None else ""
    return f"its worker stopped (no heartbeat within sweep.grace_period){again}"
