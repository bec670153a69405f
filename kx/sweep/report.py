"""The end of a sweep, local or SageMaker: the trials' table, the best trial, and the parent run.

:func:`summarize` takes :class:`TrialResult` records (whatever ran them), prints the table and the
best trial, and logs on the sweep's MLflow parent run the best parameters and objective, the trial
counts by state, the optimisation-history and parameter-importance plots, an interactive
parallel-coordinates page of every trial (:mod:`kx.reporting.parallel`), ``best_trial.yaml`` (a
config ``train.py`` retrains the winner from as-is) and a description linking to the trials'
comparison. The plots come from an in-memory Optuna study
rebuilt from the records, so they need no study storage.
"""

import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from kx import process
from kx.config.objective import Objective
from kx.reporting import parallel
from kx.sweep.overrides import as_config, render
from kx.tracking.links import TRAINING_VIEW, compare_link

log = logging.getLogger("kx")

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "KILLED")
PARALLEL_FILE = "parallel_coordinates.html"
NOTE_TAG = "mlflow.note.content"  # the run's description in MLflow's UI


@dataclass
class TrialResult:
    """One trial of a sweep as the report sees it."""

    number: int
    params: Dict[str, Any] = field(default_factory=dict)  # swept key -> value
    state: str = "RUNNING"  # one of STATES
    value: Optional[float] = None  # the objective (the exported model's value)
    seconds: Optional[float] = None
    run_id: Optional[str] = None  # its MLflow child run
    output: Optional[str] = None  # run folder (local) or training job name (SageMaker)
    model: Optional[str] = None  # where its model is
    reason: Optional[str] = None  # one-line failure reason

    def overrides(self) -> List[str]:
        """The trial's parameters as command-line overrides."""
        return [render(key, value) for key, value in self.params.items()]


def best_trial(goal: Objective, trials: Sequence[TrialResult]) -> Optional[TrialResult]:
    """The completed trial with the best objective (the earliest on a tie), or None."""
    done = [t for t in trials if t.state == "COMPLETE" and t.value is not None and math.isfinite(t.value)]
    if not done:
        return None
    sign = -1.0 if goal.maximize else 1.0
    return min(done, key=lambda t: (sign * t.value, t.number))


def counts(trials: Sequence[TrialResult]) -> Dict[str, int]:
    """Trials by state, every state listed."""
    return {state: sum(t.state == state for t in trials) for state in STATES}


def table(goal: Objective, trials: Sequence[TrialResult]) -> str:
    """One line per trial: number, parameters, objective, state, seconds."""
    keys = sorted({key for t in trials for key in t.params})
    header = ["trial", *keys, goal.metric, "state", "seconds"]
    rows = [header]
    for t in sorted(trials, key=lambda t: t.number):
        rows.append(
            [
                str(t.number),
                *(_cell(t.params.get(k, "")) for k in keys),
                "" if t.value is None else f"{t.value:.4f}",
                t.state,
                "" if t.seconds is None else f"{t.seconds:.1f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summarize(
    parent: Optional[Any],
    goal: Objective,
    trials: Sequence[TrialResult],
    out_dir: Path,
    base_overrides: Sequence[str],
) -> Optional[TrialResult]:
    """Print the table and the best trial; log the summary on ``parent`` (an ``MLflowRun``, or None
    without tracking); write ``best_trial.yaml`` and the plots to ``out_dir``; return the best trial."""
    out_dir.mkdir(parents=True, exist_ok=True)
    best = best_trial(goal, trials)
    by_state = counts(trials)
    print(table(goal, trials))
    print("trials: " + ", ".join(f"{n} {state.lower()}" for state, n in by_state.items() if n))
    files = [*plots(goal, trials, out_dir), parallel_coordinates(goal, trials, out_dir)]
    if best is None:
        print(f"no trial completed: no best {goal.metric}.")
    else:
        best_file = out_dir / "best_trial.yaml"
        best_file.write_text(as_config([*base_overrides, *best.overrides()]))
        files.append(best_file)
        _print_best(goal, best, base_overrides, best_file)
    if parent is not None:
        _log_parent(parent, goal, best, trials, files)
    return best


def _print_best(goal: Objective, best: TrialResult, base: Sequence[str], best_file: Path) -> None:
    print(f"best trial: {best.number}  {goal.metric}={best.value:.4f}")
    print(f"  overrides: {' '.join([*base, *best.overrides()])}")
    if best.output:
        print(f"  output:    {best.output}")
    if best.model:
        print(f"  model:     {best.model}")
    print(f"  retrain:   python train.py --config-dir {best_file.parent} --config-name {best_file.stem}")


def _log_parent(
    parent: Any,
    goal: Objective,
    best: Optional[TrialResult],
    trials: Sequence[TrialResult],
    files: List[Path],
) -> None:
    parent.log_metrics({f"trials_{state.lower()}": n for state, n in counts(trials).items()})
    if best is not None:
        parent.log_metrics({f"best_{goal.metric}": best.value})
        tags = {f"kx.best.{key}": str(value) for key, value in best.params.items()}
        tags["kx.best_trial"] = str(best.number)
        if best.run_id:
            tags["kx.best_run_id"] = best.run_id
        parent.set_tags(tags)
    parent.log_artifacts(files)
    parent.set_tags({NOTE_TAG: description(parent.experiment_id, parent.run_id, goal, best, trials)})


def description(
    experiment_id: str,
    run_id: str,
    goal: Objective,
    best: Optional[TrialResult],
    trials: Sequence[TrialResult],
) -> str:
    """The parent run's description (Markdown): links to the trials' comparison and to the
    parallel-coordinates page first (MLflow shows a description's first lines only), then the outcome."""
    ids = [t.run_id for t in sorted(trials, key=lambda t: t.number) if t.run_id]
    page = f"#/experiments/{experiment_id}/runs/{run_id}/artifacts/{PARALLEL_FILE}?{TRAINING_VIEW}"
    links = [f"[Every trial over every tuned parameter and {goal.metric}]({page})"]
    if ids:
        trials_text = f"{len(ids)} trials" if len(ids) > 1 else "trial"
        links.insert(0, f"[Compare the {trials_text} side by side]({compare_link(experiment_id, ids)})")
    by_state = ", ".join(f"{n} {state.lower()}" for state, n in counts(trials).items() if n)
    outcome = f"**Sweep of {len(trials)} trials** ({by_state}), objective `{goal.metric}` ({goal.direction})"
    if best is not None:
        outcome += f"; best: trial {best.number}, {goal.metric}={best.value:.4f}"
    return " · ".join(links) + "\n\n" + outcome + "."


def parallel_coordinates(goal: Objective, trials: Sequence[TrialResult], out_dir: Path) -> Path:
    """``parallel_coordinates.html``: every trial over every tuned parameter and the objective."""
    keys = sorted({key for t in trials for key in t.params})
    title = f"{len(trials)} trials: {goal.metric} ({goal.direction}) over {', '.join(keys) or 'no parameter'}"
    drawn = [parallel.PlottedTrial(t.number, t.params, t.state, t.value, f"trial {t.number}") for t in trials]
    return parallel.write(drawn, goal.metric, goal.maximize, title, out_dir / PARALLEL_FILE)


def study_of(goal: Objective, trials: Sequence[TrialResult]) -> Any:
    """An in-memory Optuna study holding the finished trials (parameters' ranges as observed)."""
    import optuna

    process.quiet_optuna_logs()
    study = optuna.create_study(direction=goal.direction)
    states = {
        "COMPLETE": optuna.trial.TrialState.COMPLETE,
        "PRUNED": optuna.trial.TrialState.PRUNED,
        "FAIL": optuna.trial.TrialState.FAIL,
    }
    finished = [t for t in trials if t.state in states]
    distributions = _distributions(finished)
    for t in sorted(finished, key=lambda t: t.number):
        value = t.value if t.state == "COMPLETE" else None
        state = states[t.state] if t.state != "COMPLETE" or value is not None else states["FAIL"]
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params=t.params,
                distributions={k: distributions[k] for k in t.params},
            )
        )
    return study


def _distributions(trials: Sequence[TrialResult]) -> Dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    observed: Dict[str, List[Any]] = {}
    for t in trials:
        for key, value in t.params.items():
            observed.setdefault(key, []).append(value)
    result: Dict[str, Any] = {}
    for key, values in observed.items():
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numbers and min(values) < max(values):
            result[key] = FloatDistribution(float(min(values)), float(max(values)))
        else:
            result[key] = CategoricalDistribution(sorted(set(values), key=repr))
    return result


def plots(goal: Objective, trials: Sequence[TrialResult], out_dir: Path) -> List[Path]:
    """``optimization_history.png`` (one completed trial or more) and ``param_importances.png`` (two
    or more, with a parameter that varies)."""
    study = study_of(goal, trials)
    complete = [t for t in study.trials if t.value is not None]
    keys = {key for t in complete for key in t.params}
    varied = any(len({repr(t.params.get(key)) for t in complete}) > 1 for key in keys)
    files = []
    if complete:
        files.append(_plot(study, goal, "optimization_history", out_dir))
    if len(complete) >= 2 and varied:
        files.append(_plot(study, goal, "param_importances", out_dir))
    return [f for f in files if f is not None]


def _plot(study: Any, goal: Objective, name: str, out_dir: Path) -> Optional[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    try:
        with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = getattr(optuna_plots, f"plot_{name}")(study, target_name=goal.metric)
    except (ValueError, RuntimeError) as err:  # e.g. importances of a parameter that never varied
        log.warning("no %s plot: %s", name, err)
        return None
    figure = axes.figure
    figure.set_size_inches(8, 5)
    figure.tight_layout()
    path = out_dir / f"{name}.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
