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
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from omegaconf import DictConfig

from kx.errors import KxError
from kx.sweep import optuna_space, runs
from kx.sweep.overrides import render, value_text
from kx.sweep.plan import SweepPlan, plan
from kx.sweep.process import TrialProcess, thread_env
from kx.sweep.report import TrialResult, summarize
from kx.sweep.study import open_study, results
from kx.sweep.trial import PRUNED_ATTR, TrialLink
from kx.tracking import MLflowRun
from kx.tracking.links import announce

log = logging.getLogger("kx")

POLL_SECONDS = 0.5
STOPPED = "stopped with the sweep (Ctrl-C or SIGTERM)"


class SweepFailed(KxError):
    """The sweep stopped early: too many trials failed."""


class Sweep:
    """One run of a sweep command over its (possibly resumed) study."""

    def __init__(self, plan: SweepPlan, study: Any, parent: Optional[MLflowRun], out_dir: Path,
                 command: List[str]) -> None:  # fmt: skip
        self.plan, self.study, self.parent, self.out_dir = plan, study, parent, out_dir
        self.command = command  # python train.py [--config-name ...]
        self.running: Dict[int, Tuple[Any, TrialProcess]] = {}
        self.distributions = optuna_space.distributions(plan.space)

    def finished(self) -> List[Any]:
        import optuna

        done = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL,
        )
        return self.study.get_trials(deepcopy=False, states=done)

    def run(self) -> None:
        """Run trials until the budget is spent; raise :class:`SweepFailed` past the failure limit."""
        while True:
            self.reap()
            finished = self.finished()
            failures = sum(t.state.name == "FAIL" for t in finished)
            if failures > self.plan.max_failures:
                self.wait_all()
                raise SweepFailed(f"{failures} of {len(finished)} trials failed, more than "
                                  f"sweep.budget.max_failure_rate={self.plan.max_failure_rate} of "
                                  f"{self.plan.trials}; the sweep stopped (see each trial's reason above).")  # fmt: skip
            while (
                len(self.running) < self.plan.parallel
                and len(finished) + len(self.running) < self.plan.trials
            ):
                self.launch()
            if not self.running:
                return
            time.sleep(POLL_SECONDS)

    def launch(self) -> None:
        """Ask for a trial and start its process (a Ctrl-C meanwhile waits until it runs)."""
        with deferred_interrupts():
            self._start(self.study.ask(self.distributions))

    def _start(self, trial: Any) -> None:
        params = {key: trial.params[key] for key in self.distributions}
        run_dir = self.out_dir / str(trial.number)
        name = runs.trial_run_name(trial.number, params)
        # the trial's storage id: Optuna's Trial has no public accessor (TrialLink.optuna_trial, pinned in tests)
        link = TrialLink(
            self.plan.storage, self.plan.study, trial._trial_id, trial.number, self.plan.pruner, name
        )
        overrides = [*self.plan.base_overrides, *(render(k, v) for k, v in params.items())]
        command = [*self.command, *overrides, f"hydra.run.dir={value_text(str(run_dir))}"]
        env = {**runs.clean_env(), **link.env(), **runs.parent_env(self.parent),
               **thread_env(self.plan.parallel, os.environ)}  # fmt: skip
        trial.set_user_attr("kx.output", str(run_dir))
        log.info("trial %d: %s", trial.number, " ".join(render(k, v) for k, v in params.items()))
        self.running[trial.number] = (trial, TrialProcess(trial.number, command, env, run_dir))

    def reap(self) -> None:
        for number, (trial, process) in list(self.running.items()):
            if process.poll() is not None:
                with deferred_interrupts():  # a trial's bookkeeping is never cut in half
                    del self.running[number]
                    self.record(trial, process)

    def record(self, trial: Any, process: TrialProcess, stopped: bool = False) -> TrialResult:
        """Tell the study how the trial ended and mark its MLflow child run."""
        import optuna

        state, value, reason = self._outcome(trial, process, stopped)
        trial.set_user_attr("kx.seconds", round(process.seconds, 3))
        if reason:
            trial.set_user_attr("kx.reason", reason)
        if state == "COMPLETE":
            trial.set_user_attr("kx.model", str(process.run_dir / "model"))
        result = TrialResult(trial.number, dict(trial.params), state, value, process.seconds,
                             output=str(process.run_dir), reason=reason)  # fmt: skip
        if self.parent is not None:
            result.run_id = self._record_child(result, stopped)
            trial.set_user_attr("kx.run_id", result.run_id)
        self.study.tell(trial, value if state == "COMPLETE" else None,
                        state=getattr(optuna.trial.TrialState, state))  # fmt: skip
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

    def stop_all(self) -> None:
        """Stop the running trials (SIGTERM, then SIGKILL) and record them as failed; a second
        Ctrl-C meanwhile is ignored, so that the study and the runs are left consistent."""
        if self.running:
            log.warning("stopping %d running trial(s); their runs end KILLED", len(self.running))
        with deferred_interrupts(reraise=False):
            for number, (trial, process) in list(self.running.items()):
                process.stop()
                del self.running[number]
                self.record(trial, process, stopped=True)


@contextmanager
def deferred_interrupts(reraise: bool = True) -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then raise KeyboardInterrupt (or drop them)."""
    caught: List[int] = []
    handlers = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}  # fmt: skip
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if caught and reraise:
        raise KeyboardInterrupt


def _pruned_epoch(study: Any, number: int) -> Optional[int]:
    """The epoch after which the trial's process was pruned (it says so in the study), or None."""
    found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    return found[0].user_attrs.get(PRUNED_ATTR) if found else None


def _objective_value(run_dir: Path, metric: str) -> Optional[float]:
    """The trial's objective: its exported model's (best epoch's) value in ``metrics.json``."""
    try:
        return float(json.loads((run_dir / "metrics.json").read_text())["best"][metric])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_sweep(cfg: DictConfig, arguments: Sequence[str], command: List[str],
              parallel: Optional[int] = None) -> Optional[TrialResult]:  # fmt: skip
    """Run (or resume) the sweep ``train.py -m ARGUMENTS`` asks for; return the best trial."""
    the_plan = plan(cfg, arguments, parallel)
    out_dir = Path(str(cfg.hydra.sweep.dir)).absolute()
    study = open_study(the_plan)
    parent = runs.open_parent(cfg, the_plan, study, out_dir)
    sweep = Sweep(the_plan, study, parent, out_dir, command)
    log.info("sweep %s: %d trials (%d done), %d at once, sampler %s, pruner %s; study in %s",
             the_plan.study, the_plan.trials, len(sweep.finished()), the_plan.parallel,
             the_plan.sampler, the_plan.pruner, the_plan.storage)  # fmt: skip
    status = "FAILED"
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops it like Ctrl-C
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
    """Summarise the study and end the parent run with ``status`` (even when summarising fails)."""
    try:
        best = summarize(sweep.parent, sweep.plan.goal, results(sweep.study), sweep.out_dir,
                         sweep.plan.base_overrides)  # fmt: skip
    finally:
        if sweep.parent is not None:
            if status == "FINISHED" and not any(t.state.name == "COMPLETE" for t in sweep.finished()):
                status = "FAILED"
            sweep.parent.end(status)
            announce(sweep.parent, "sweep")
    return best
