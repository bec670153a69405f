"""The sweep loop: ask Optuna for trials, run each as a ``train.py`` process, tell Optuna the result.

Up to ``budget.parallel`` trials run at once. A failed trial is recorded and the sweep goes on
until more than ``budget.max_failure_rate`` of the budget has failed. Whatever ends the sweep (the
budget, too many failures, Ctrl-C, SIGTERM, an error) the running trials are stopped, the study
and the MLflow runs are left consistent, and the summary is printed and logged.
"""

import json
import logging
import math
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from omegaconf import DictConfig

from kx.config.keys import hydra_value
from kx.errors import KxError
from kx.sweep import hyperband, optuna_space, runs
from kx.sweep.heartbeat import Heartbeat
from kx.sweep.overrides import render
from kx.sweep.plan import SweepPlan, plan
from kx.sweep.process import TrialProcess, thread_env
from kx.sweep.report import TrialResult, summarize
from kx.sweep.study import (
    INTERRUPTED,
    SECONDS_ATTR,
    SURPLUS_ATTR,
    WORKER_ATTR,
    busy_seconds,
    claim,
    counted,
    fail_orphaned,
    fail_stale,
    open_study,
    quiet_optuna,
    release,
    results,
    retried,
    stale_reason,
)
from kx.sweep.trial import EXPORTED_ATTR, PRUNED_ATTR, TrialLink
from kx.tracking import MLflowRun
from kx.tracking.links import announce
from kx.tracking.liveness import process_tags
from kx.tracking.secrets import redact

log = logging.getLogger("kx")

POLL_SECONDS = 0.5
STOPPED = "stopped with the sweep (Ctrl-C or SIGTERM)"
OUT_OF_TIME = "stopped: the sweep's time budget (sweep.budget.minutes={}) was spent"


class SweepFailed(KxError):
    """The sweep stopped early: too many trials failed."""


class Sweep:
    """One worker of a sweep: it runs trials of the (possibly shared, possibly resumed) study until
    the study's budget is spent, waiting meanwhile for the trials other workers run."""

    def __init__(
        self, plan: SweepPlan, study: Any, parent: Optional[MLflowRun], out_dir: Path, command: List[str]
    ) -> None:
        self.plan, self.study, self.parent, self.out_dir = plan, study, parent, out_dir
        self.command = command  # python train.py [--config-name ...]
        self.running: Dict[int, Tuple[Any, TrialProcess]] = {}
        self.distributions = optuna_space.distributions(plan.space)
        self.checked = 0.0  # when stale trials were last looked for
        self.waiting_logged = False
        self.tried_surplus: Set[int] = set()  # surplus trials whose grid point this worker tried to claim
        # Optuna's Study has no public accessor for its storage (fail_stale_trials reads it the same way)
        self.heartbeat = Heartbeat(study._storage, plan.heartbeat_interval, self.trial_ids)

    def trials(self) -> List[Any]:
        return self.study.get_trials(deepcopy=False)

    def finished(self) -> List[Any]:
        """The trials that took their place in the budget and ended."""
        return [t for t in counted(self.trials()) if t.state.is_finished()]

    def run(self) -> None:
        """Run trials until the study's budget is spent; raise :class:`SweepFailed` past the failure limit."""
        while True:
            self.reap()
            self.check_stale()
            places = list(counted(self.trials()))
            failures = sum(t.state.name == "FAIL" for t in places)
            if failures > self.plan.max_failures:
                self.wait_all()
                raise SweepFailed(
                    f"{failures} of {len(places)} trials failed, more than "
                    f"sweep.budget.max_failure_rate={self.plan.max_failure_rate} of "
                    f"{self.plan.trials}; the sweep stopped (see each trial's reason above)."
                )
            if self.out_of_time():
                self.stop_all(budget=True)
                return  # other workers stop their own trials
            while len(self.running) < self.plan.parallel and self.room():
                self.launch()
            if not self.running and not self.others_busy():
                return
            time.sleep(POLL_SECONDS)

    def out_of_time(self) -> bool:
        """Whether the study's time budget is spent (its trials' wall time, see :func:`busy_seconds`)."""
        if self.plan.minutes is None:
            return False
        if busy_seconds(self.trials()) < self.plan.minutes * 60:
            return False
        log.info("the sweep's time budget is spent (sweep.budget.minutes=%g)", self.plan.minutes)
        return True

    def room(self) -> bool:
        """Whether the study has a place for another trial: a queued retry, or budget left."""
        trials = self.trials()
        queued = any(t.state.name == "WAITING" for t in trials)
        return queued or len(list(counted(trials))) < self.plan.trials

    def others_busy(self) -> bool:
        """Whether other workers still run trials (whose retry this worker may have to take)."""
        busy = [t for t in self.trials() if t.state.name in ("RUNNING", "WAITING")]
        if busy and not self.waiting_logged:
            log.info("waiting for %d trial(s) of other workers", len(busy))
            self.waiting_logged = True
        return bool(busy)

    def check_stale(self) -> None:
        """Every heartbeat interval: fail (and queue again) the trials of workers that stopped."""
        if time.monotonic() - self.checked < self.plan.heartbeat_interval:
            return
        self.checked = time.monotonic()
        failed = fail_stale(self.study) + fail_orphaned(self.study, self.plan.grace_period)
        again = retried(self.trials())
        for trial in failed:
            reason = stale_reason(again.get(trial.number)) if trial.number in again else INTERRUPTED
            log.warning("trial %d failed: %s", trial.number, reason)
            if self.parent is not None:
                result = TrialResult(
                    trial.number,
                    dict(trial.params),
                    "FAIL",
                    output=trial.user_attrs.get("kx.output"),
                    reason=reason,
                )
                self._record_child(result, stopped=True)

    def launch(self) -> None:
        """Take a place in the study, draw the trial's parameters and start its process (a Ctrl-C
        meanwhile waits until it runs). Each draw is seeded by
        :func:`~kx.sweep.optuna_space.draw_seed`: its own seed for random and TPE, the sweep's for a grid."""
        with deferred_interrupts():
            trials = self.trials()  # one read for what is queued before the ask
            places = list(counted(trials))
            free = len(places) < self.plan.trials  # a place left, not only a queued trial's
            planned = self.next_rung(places, free) if self.plan.rungs else None
            promoting = planned is not None and planned.promoted_from is not None
            if free and self.plan.sampler == "grid" and not promoting:
                self.requeue_surplus_point(trials, places)
            with quiet_optuna():
                trial = self.study.ask()
            if planned is not None and hyperband.EPOCHS_ATTR not in trial.user_attrs:
                trial.set_user_attr(hyperband.EPOCHS_ATTR, planned.epochs)
                trial.set_user_attr(hyperband.BRACKET_ATTR, planned.bracket)
            self.heartbeat.record(trial._trial_id)
            seed = optuna_space.draw_seed(self.plan.sampler, self.plan.seed, trial.number)
            self.study.sampler = optuna_space.sampler(
                self.plan.sampler, self.plan.space, seed, self.plan.trials
            )
            for name, dist in self.distributions.items():
                optuna_space.suggest(trial, name, dist)
            if not self.surplus(trial):  # drawn first: a surplus grid point keeps its parameters
                self._start(trial)

    def next_rung(self, places: List[Any], free: bool) -> hyperband.Next:
        """Hyperband's next trial, given the trials in the budget's ``places``: a promotion this worker
        claimed (queued in the study with its parameters, epochs and bracket, for the next ask) while
        the budget has a ``free`` place, else new parameters' bracket and epochs."""
        done = [hyperband_run(t) for t in places if hyperband.EPOCHS_ATTR in t.user_attrs]
        for planned in hyperband.promotions(done, self.plan.rungs, self.plan.goal.maximize) if free else []:
            if claim(self.plan, f"{self.plan.study}:promoted:{planned.promoted_from}"):
                with quiet_optuna():
                    self.study.enqueue_trial(
                        planned.params,
                        user_attrs={
                            hyperband.EPOCHS_ATTR: planned.epochs,
                            hyperband.BRACKET_ATTR: planned.bracket,
                            hyperband.PROMOTED_FROM_ATTR: planned.promoted_from,
                        },
                    )
                log.info("trial %d moves up to %d epochs", planned.promoted_from, planned.epochs)
                return planned
        return hyperband.new_trial(done, self.plan.rungs)

    def requeue_surplus_point(self, trials: List[Any], places: List[Any]) -> None:
        """Queue a grid point whose trial was a surplus for the place about to be taken. Optuna counts
        the point of every finished trial as visited, so no later trial of the grid would draw it.
        Claimed, so that one worker queues it."""
        taken = [t.params for t in places]
        for t in trials:
            unrun = t.user_attrs.get(SURPLUS_ATTR) and t.params and t.params not in taken
            if not unrun or t.number in self.tried_surplus:
                continue
            self.tried_surplus.add(t.number)  # claimed once: by this worker now, or by another
            if claim(self.plan, f"{self.plan.study}:surplus-point:{t.number}"):
                with quiet_optuna():
                    self.study.enqueue_trial(dict(t.params))
                log.info("grid point of surplus trial %d queued again", t.number)
                return

    def surplus(self, trial: Any) -> bool:
        """A trial asked for while another worker took the last place: told FAIL, never run. A
        promotion it carried is released for the next place (a resume with a larger budget)."""
        import optuna

        places = [t.number for t in counted(self.trials())]
        if places.index(trial.number) < self.plan.trials:
            return False
        trial.set_user_attr(SURPLUS_ATTR, True)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        promoted = trial.user_attrs.get(hyperband.PROMOTED_FROM_ATTR)
        if promoted is not None:
            release(self.plan, f"{self.plan.study}:promoted:{promoted}")
        return True

    def _start(self, trial: Any) -> None:
        params = {key: trial.params[key] for key in self.distributions}
        run_dir = self.out_dir / str(trial.number)
        name = runs.trial_run_name(trial.number, params)
        # the trial's storage id: Optuna's Trial has no public accessor (TrialLink.optuna_trial, pinned in tests)
        pruner = "median" if self.plan.pruner == "median" else "none"  # Hyperband: see next_rung
        link = TrialLink(self.plan.storage, self.plan.study, trial._trial_id, trial.number, pruner, name)
        overrides = [*self.plan.base_overrides, *(render(k, v) for k, v in params.items())]
        epochs = trial.user_attrs.get(hyperband.EPOCHS_ATTR)
        if epochs is not None:  # its own budget: its schedule runs over these epochs
            overrides = [o for o in overrides if not o.startswith("train.epochs=")] + [
                f"train.epochs={epochs}"
            ]
        command = [*self.command, *overrides, f"hydra.run.dir={hydra_value(str(run_dir))}"]
        env = {
            **runs.clean_env(),
            **link.env(),
            **runs.parent_env(self.parent),
            **thread_env(self.plan.parallel, os.environ),
        }
        trial.set_user_attr("kx.output", str(run_dir))
        trial.set_user_attr(WORKER_ATTR, process_tags())
        if self.parent is not None:
            runs.own_parent(self.parent)
        shown = " ".join(render(k, v) for k, v in params.items()) + (f" ({epochs} epochs)" if epochs else "")
        log.info("trial %d: %s", trial.number, shown)
        self.running[trial.number] = (trial, TrialProcess(trial.number, command, env, run_dir))

    def trial_ids(self) -> List[int]:
        """The storage ids of the trials this worker runs (for its heartbeats)."""
        return [trial._trial_id for trial, _ in list(self.running.values())]

    def reap(self) -> None:
        for number, (trial, process) in list(self.running.items()):
            if process.poll() is not None:
                with deferred_interrupts():  # a trial's bookkeeping is never cut in half
                    del self.running[number]
                    self.record(trial, process)

    def record(
        self, trial: Any, process: TrialProcess, stopped: bool = False, budget: bool = False
    ) -> TrialResult:
        """Tell the study how the trial ended and mark its MLflow child run."""
        import optuna

        state, value, reason = self._outcome(trial, process, stopped)
        if stopped and budget and state == "FAIL":  # the time budget stopped it: no failure
            state, reason = "PRUNED", OUT_OF_TIME.format(f"{self.plan.minutes:g}")
        result = TrialResult(
            trial.number,
            dict(trial.params),
            state,
            value,
            process.seconds,
            output=str(process.run_dir),
            reason=reason,
        )
        try:
            trial.set_user_attr(SECONDS_ATTR, round(process.seconds, 3))
            if reason:
                trial.set_user_attr("kx.reason", reason)
            if state == "COMPLETE":
                trial.set_user_attr("kx.model", str(process.run_dir / "model"))
            if self.parent is not None:
                result.run_id = self._record_child(result, stopped and state != "COMPLETE")
                trial.set_user_attr("kx.run_id", result.run_id)
            self.study.tell(
                trial, value if state == "COMPLETE" else None, state=getattr(optuna.trial.TrialState, state)
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning(
                "trial %d was failed by another worker meanwhile (no heartbeat within "
                "sweep.grace_period) and runs again; this run's results stay in %s",
                trial.number,
                process.run_dir,
            )
            return result
        shown = f" {self.plan.goal.metric}={value:.4f}" if value is not None else f": {reason}"
        log.info("trial %d %s in %.1f s%s", trial.number, state, process.seconds, shown)
        return result

    def _record_child(self, result: TrialResult, stopped: bool) -> Optional[str]:
        """Mark the trial's MLflow child run; a tracking failure is reported and the sweep goes on."""
        name = runs.trial_run_name(result.number, result.params)
        try:
            return runs.record_child(
                self.parent, result, name, self.plan.goal.metric, "KILLED" if stopped else None
            )
        except Exception as err:  # noqa: BLE001 - the study and the trial's folder keep the result
            log.warning("MLflow: cannot record trial %d (%s: %s)", result.number, type(err).__name__, err)
            return None

    def _outcome(
        self, trial: Any, process: TrialProcess, stopped: bool
    ) -> Tuple[str, Optional[float], Optional[str]]:
        exported = _exported(self.study, trial.number)
        value = _objective_value(process.run_dir, self.plan.goal.metric) if exported else None
        if exported and value is not None and math.isfinite(value):
            # trained and exported: complete, whatever stopped its logging afterwards
            return "COMPLETE", value, None if process.popen.returncode == 0 else process.reason()
        if stopped:
            return "FAIL", None, STOPPED
        if process.popen.returncode != 0:
            pruned = _pruned_epoch(self.study, trial.number) is not None
            return ("PRUNED" if pruned else "FAIL"), None, process.reason()
        value = _objective_value(process.run_dir, self.plan.goal.metric)
        if value is None or not math.isfinite(value):
            return "FAIL", None, f"finished without a finite {self.plan.goal.metric} in metrics.json"
        return "COMPLETE", value, None

    def wait_all(self) -> None:
        while self.running:
            self.reap()
            time.sleep(POLL_SECONDS)

    def stop_all(self, budget: bool = False) -> None:
        """Stop the running trials (SIGTERM, then SIGKILL) and record them (failed unless they had
        exported their model; pruned when the time ``budget`` stopped them); a second Ctrl-C
        meanwhile is ignored, so that the study and the runs are left consistent."""
        if self.running:
            log.warning("stopping %d running trial(s); their runs end KILLED", len(self.running))
        with deferred_interrupts(reraise=False):
            for number, (trial, process) in list(self.running.items()):
                process.stop()
                del self.running[number]
                self.record(trial, process, stopped=True, budget=budget)


@contextmanager
def deferred_interrupts(reraise: bool = True) -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then raise KeyboardInterrupt (or drop them)."""
    caught: List[int] = []
    handlers = {
        sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if caught and reraise:
        raise KeyboardInterrupt


def hyperband_run(trial: Any) -> hyperband.Run:
    """A trial as successive halving sees it (its value only when complete)."""
    attrs = trial.user_attrs
    value = trial.value if trial.state.name == "COMPLETE" else None
    return hyperband.Run(
        trial.number,
        dict(trial.params),
        int(attrs[hyperband.EPOCHS_ATTR]),
        int(attrs.get(hyperband.BRACKET_ATTR, 0)),
        value,
        attrs.get(hyperband.PROMOTED_FROM_ATTR),
    )


def _user_attr(study: Any, number: int, key: str) -> Any:
    found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    return found[0].user_attrs.get(key) if found else None


def _pruned_epoch(study: Any, number: int) -> Optional[int]:
    """The epoch after which the trial's process was pruned (it says so in the study), or None."""
    return _user_attr(study, number, PRUNED_ATTR)


def _exported(study: Any, number: int) -> bool:
    """Whether the trial's process told the study that its model is exported."""
    return bool(_user_attr(study, number, EXPORTED_ATTR))


def _objective_value(run_dir: Path, metric: str) -> Optional[float]:
    """The trial's objective: its exported model's (best epoch's) value in ``metrics.json``."""
    try:
        return float(json.loads((run_dir / "metrics.json").read_text())["best"][metric])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_sweep(
    cfg: DictConfig, arguments: Sequence[str], command: List[str], parallel: Optional[int] = None
) -> Optional[TrialResult]:
    """Run (or resume, or join) the sweep ``train.py -m ARGUMENTS`` asks for; return the best trial."""
    the_plan = plan(cfg, arguments, parallel)
    out_dir = Path(str(cfg.hydra.sweep.dir)).absolute()
    study, the_plan = open_study(the_plan)
    parent = runs.open_parent(cfg, the_plan, study, out_dir)
    sweep = Sweep(the_plan, study, parent, out_dir, command)
    log.info(
        "sweep %s: %d trials (%d done), %d at once, sampler %s, pruner %s; study in %s",
        the_plan.study,
        the_plan.trials,
        len(sweep.finished()),
        the_plan.parallel,
        the_plan.sampler,
        the_plan.pruner,
        redact(the_plan.storage),
    )
    status = "FAILED"
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops it like Ctrl-C
    try:
        with sweep.heartbeat:  # beating until the stopped trials are recorded too
            try:
                sweep.run()
                status = "FINISHED"
            except KeyboardInterrupt:
                status = "KILLED"
                sweep.stop_all()
    finally:
        signal.signal(signal.SIGTERM, previous)
        best = _finish(sweep, status)
    if status == "KILLED":
        print("kx: the sweep was stopped; rerun the same command to resume it.", file=sys.stderr)
        sys.exit(130)
    return best


def _finish(sweep: Sweep, status: str) -> Optional[TrialResult]:
    """Summarise the study and end the parent run with ``status`` (even when summarising fails),
    unless other workers still run trials: then it stays RUNNING, owned by one of them."""
    try:
        best = summarize(
            sweep.parent, sweep.plan.goal, results(sweep.study), sweep.out_dir, sweep.plan.base_overrides
        )
    finally:
        if sweep.parent is not None:
            others = [
                t for t in sweep.trials() if t.state.name == "RUNNING" and t.user_attrs.get(WORKER_ATTR)
            ]
            if status == "FINISHED" and not any(t.state.name == "COMPLETE" for t in sweep.finished()):
                status = "FAILED"
            if others:
                runs.own_parent(sweep.parent, others[0].user_attrs[WORKER_ATTR])
                log.info("the sweep's parent run stays RUNNING: other workers run %d trial(s)", len(others))
            else:
                sweep.parent.end(status)
                announce(sweep.parent, "sweep")
    return best
