"""The sweep's Optuna study: created or resumed in its storage, and read back as trial records.

A rerun of the same command resumes the study: finished trials stay, a trial left running by a
crash or Ctrl-C is marked failed, and the budget counts them all. A study must keep its identity
(search space, objective, the overrides its trials share): another one is refused in one line.
"""

from typing import Any, List

from kx.errors import KxError
from kx.sweep import optuna_space
from kx.sweep.plan import SweepPlan, identity
from kx.sweep.report import TrialResult

IDENTITY_ATTR = "kx.identity"
PARENT_RUN_ATTR = "kx.mlflow_parent_run_id"
INTERRUPTED = "the sweep stopped while this trial ran"


def storage(url: str) -> Any:
    """Optuna's RDB storage; SQLite waits for the lock, since trial processes write to it too."""
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as err:  # noqa: BLE001 - a bad URL or an unwritable file, reported in one line
        raise KxError(f"Cannot open the sweep storage sweep.storage={url!r} ({type(err).__name__}: "
                      f"{str(err).splitlines()[0]}); use a sqlite:///path.db URL.") from None  # fmt: skip


def open_study(plan: SweepPlan) -> Any:
    """Create the plan's study, or load it (with its identity checked and stale trials failed).

    A resumed study's sampler is seeded with ``seed + trials so far``: the same seed would replay
    the first trials' draws."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = storage(plan.storage)
    study = optuna.create_study(storage=rdb, study_name=plan.study, direction=plan.goal.direction,
                                load_if_exists=True)  # fmt: skip
    _check_identity(study, plan)
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
    so_far = len(study.get_trials(deepcopy=False))
    seed = None if plan.seed is None else plan.seed + so_far
    return optuna.load_study(study_name=plan.study, storage=rdb, pruner=optuna_space.pruner(plan.pruner),
                             sampler=optuna_space.sampler(plan.sampler, plan.space, seed, plan.trials))  # fmt: skip


def _check_identity(study: Any, plan: SweepPlan) -> None:
    stored = study.user_attrs.get(IDENTITY_ATTR)
    wanted = identity(plan)
    if stored is None:
        study.set_user_attr(IDENTITY_ATTR, wanted)
    elif stored != wanted:
        raise KxError(f"Study {plan.study!r} in {plan.storage} was run with another search space, "
                      f"objective or overrides ({_difference(stored, wanted)}); resume it with the same "
                      "command, or start a new study with sweep.study=<new name>.")  # fmt: skip


def _difference(stored: str, wanted: str) -> str:
    before, now = stored.splitlines(), wanted.splitlines()
    gone = [line for line in before if line not in now]
    new = [line for line in now if line not in before]
    return f"was {'; '.join(gone) or 'nothing more'}, now {'; '.join(new) or 'nothing more'}"


def results(study: Any) -> List[TrialResult]:
    """Every trial of the study as the report's records, in order."""
    return [result(t) for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)]


def result(trial: Any) -> TrialResult:
    attrs = trial.user_attrs
    seconds = attrs.get("kx.seconds")
    if seconds is None and trial.duration is not None:
        seconds = trial.duration.total_seconds()
    reason = attrs.get("kx.reason")
    if trial.state.name == "FAIL" and reason is None:
        reason = INTERRUPTED
    return TrialResult(number=trial.number, params=dict(trial.params), state=trial.state.name,
                       value=trial.value, seconds=seconds, run_id=attrs.get("kx.run_id"),
                       output=attrs.get("kx.output"), model=attrs.get("kx.model"), reason=reason)  # fmt: skip
