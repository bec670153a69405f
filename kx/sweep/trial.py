"""Inside one trial's process: the link back to its sweep, set by the sweeper in the environment.

A trial is an ordinary ``train.py`` run with ``KX_SWEEP_*`` variables. This module (importable on
Python 3.8, Optuna imported only inside a pruned sweep's trial) names the trial's MLflow run and,
when the sweep prunes, reports each epoch's objective to the study and stops a trial the pruner
gives up on at once (:class:`TrialPruned`: nothing is exported, the run ends KILLED).
"""

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from omegaconf import DictConfig

from kx import process
from kx.config.objective import Objective, objective
from kx.observer import RunObserver
from kx.stopping import RunStopped
from kx.sweep.optuna_space import pruner

STORAGE_ENV = "KX_SWEEP_STORAGE"  # Optuna storage URL
STUDY_ENV = "KX_SWEEP_STUDY"
TRIAL_ID_ENV = "KX_SWEEP_TRIAL_ID"  # Optuna's id of the trial in its storage
TRIAL_NUMBER_ENV = "KX_SWEEP_TRIAL"  # the trial's number in its study
PRUNE_ENV = "KX_SWEEP_PRUNER"  # none | median (Hyperband gives trials their epochs instead)
RUN_NAME_ENV = "KX_SWEEP_RUN_NAME"  # the MLflow child run's name
PRUNED_ATTR = "kx.pruned_epoch"  # trial user attribute: the epoch after which it was pruned
EXPORTED_ATTR = "kx.exported"  # trial user attribute: the trained model's folder, once exported

log = logging.getLogger("kx")

EpochSink = Callable[[int, Dict[str, float]], None]


class TrialPruned(RunStopped):
    """The sweep's pruner stopped this trial after an epoch; it exports nothing."""


@dataclass(frozen=True)
class TrialLink:
    storage: str
    study: str
    trial_id: int
    number: int
    pruner: str = "none"
    run_name: Optional[str] = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Optional["TrialLink"]:
        """The link when this process is a sweep's trial, else None."""
        if TRIAL_ID_ENV not in environ:
            return None
        return cls(
            environ[STORAGE_ENV],
            environ[STUDY_ENV],
            int(environ[TRIAL_ID_ENV]),
            int(environ[TRIAL_NUMBER_ENV]),
            environ.get(PRUNE_ENV, "none"),
            environ.get(RUN_NAME_ENV),
        )

    def env(self) -> Dict[str, str]:
        """The variables that make a ``train.py`` process this trial."""
        env = {
            STORAGE_ENV: self.storage,
            STUDY_ENV: self.study,
            TRIAL_ID_ENV: str(self.trial_id),
            TRIAL_NUMBER_ENV: str(self.number),
            PRUNE_ENV: self.pruner,
        }
        if self.run_name:
            env[RUN_NAME_ENV] = self.run_name
        return env

    def optuna_trial(self) -> Any:
        """This trial as an ``optuna.trial.Trial`` of the stored study.

        ``Trial(study, trial_id)`` is how Optuna itself hands a stored trial to an objective; it is
        the one way to report to a trial that another process asked for (pinned in tests)."""
        import optuna

        process.quiet_optuna_logs()
        study = optuna.load_study(study_name=self.study, storage=self.storage, pruner=pruner(self.pruner))
        return optuna.trial.Trial(study, self.trial_id)

    def pruning_sink(self, goal: Objective) -> EpochSink:
        """Report each epoch's objective; raise :class:`TrialPruned` when the pruner says stop."""
        trial = self.optuna_trial()

        def report(epoch: int, metrics: Dict[str, float]) -> None:
            value = metrics[goal.metric]
            trial.report(value, step=epoch)
            if trial.should_prune():
                trial.set_user_attr(PRUNED_ATTR, epoch)
                raise TrialPruned(
                    f"trial {self.number} pruned after epoch {epoch} "
                    f"({goal.metric}={value:.4f}): the sweep's pruner stopped it."
                )

        return report


def mark_exported(model_dir: str, environ: Mapping[str, str] = os.environ) -> None:
    """Tell the sweep that this trial trained and exported its model: it is complete whatever
    stops the process afterwards (MLflow logging, a signal). Nothing outside a sweep."""
    link = TrialLink.from_env(environ)
    if link is None:
        return
    try:
        link.optuna_trial().set_user_attr(EXPORTED_ATTR, model_dir)
    except Exception as err:  # noqa: BLE001 - the sweep then judges by the exit code, as before
        log.warning("cannot tell the sweep that the model is exported (%s: %s)", type(err).__name__, err)


def epoch_sinks(goal: Objective, environ: Mapping[str, str] = os.environ) -> List[EpochSink]:
    """The sinks a trial adds to its :class:`~kx.backends.EpochMonitor` (none outside a pruned sweep)."""
    link = TrialLink.from_env(environ)
    return [link.pruning_sink(goal)] if link and link.pruner != "none" else []


def run_identity(environ: Mapping[str, str] = os.environ) -> Tuple[Optional[str], Dict[str, str]]:
    """The MLflow run's name and tags for a trial (None and no tags outside a sweep)."""
    link = TrialLink.from_env(environ)
    if link is None:
        return None, {}
    return link.run_name, {"kx.trial.number": str(link.number), "kx.sweep.study": link.study}


class TrialObserver(RunObserver):
    """A sweep's trial as an observer of :func:`kx.pipeline.run` (nothing outside a sweep): each epoch's
    objective goes to a pruned sweep's pruner, and the sweep learns when the model is exported."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.environ = environ
        self.sinks: List[EpochSink] = []

    def started(self, cfg: DictConfig, out_dir: Any, is_chief: bool) -> None:
        self.sinks = epoch_sinks(objective(cfg), self.environ)

    def epoch(self, epoch: int, metrics: Dict[str, float]) -> None:
        for sink in self.sinks:
            sink(epoch, metrics)

    def exported(self, model_dir: Any, stopped: bool) -> None:
        if not stopped:
            mark_exported(str(model_dir), self.environ)
