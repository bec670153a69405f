"""Local tuning with kx's sweeper: Hyperband over epochs against random search within a time budget;
TPE against random search at the same trial budget; one trial at a time against two at once.

Every sweep is a real ``train.py -m`` command (fresh trial processes, MLflow, the study on SQLite)
in its own temporary folder. ``--part time`` (the first table) runs ``sweep=fashion_local``
(Hyperband, rungs of 2, 6 and 18 epochs, ``budget.minutes``) and a random search of the same space
with the same time (every trial 18 epochs), and prints the best val_acc each had reached after 15,
30 and 60 minutes (median over the seeds; the sweeps alternate, so that a drift in the machine's
load hits both alike); ``--quick`` is a smoke test of that code on digits: two trials a side (the
same draws, no promotion), which complete within its minute even on a loaded machine.
The second table is the best objective after each trial count, averaged over the seeds, for TPE
and for random search on digits; the third compares the wall time of the same sweep run with 1 and
with 2 trials at once, alternately (1, 2, 2, 1; ratio < 1: two at once pay off).

    python benchmarks/tuning.py --part time [--seeds 3] [--first-seed 0] [--minutes 15,30,60] [--quick] [--only hyperband|random]
                                           [--sampler tpe]  # the Hyperband side's sampler
    python benchmarks/tuning.py [--seeds 3] [--trials 8] [--epochs 3] [--wall-trials 4] [--part samplers|parallel] [--backend torch]
"""

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from kx.cpu import probe

PROJECT = Path(__file__).resolve().parents[1]
BASE = ["-m", "sweep=quick", "dataset=digits", "model=mlp", "hydra.sweep.dir=sweep"]


def sweep(*overrides: str, base: Sequence[str] = BASE, study: str = "quick") -> Tuple[List[Any], float]:
    """Run one sweep; its trials in trial order and its wall seconds."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(PROJECT / "train.py"), *base, *overrides],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - start
        loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{tmp}/sweeps.db")
        return sorted(loaded.trials, key=lambda t: t.number), seconds


def values(trials: List[Any]) -> List[Optional[float]]:
    """The trials' objectives (None when not complete)."""
    return [t.value if t.state.name == "COMPLETE" else None for t in trials]


def best_by(trials: List[Any], seconds: float) -> Optional[float]:
    """The best objective among the trials complete within ``seconds`` of the sweep's first trial."""
    if not trials:
        return None
    start = min(t.datetime_start for t in trials if t.datetime_start)
    limit = start + datetime.timedelta(seconds=seconds)
    done = [t.value for t in trials if t.state.name == "COMPLETE" and t.datetime_complete <= limit]
    return max(done) if done else None


def compare_within_time(
    seeds: Sequence[int],
    checkpoints: List[float],
    quick: bool,
    only: Optional[str] = None,
    sampler: Optional[str] = None,
) -> None:
    """Hyperband (``sweep=fashion_local``) against random search of its space, each given the
    largest checkpoint's minutes; the best val_acc each reached by every checkpoint. ``only``
    runs one side (half the time), for a change that concerns it alone; ``sampler`` replaces the
    file's sampler on the Hyperband side (random search stays random)."""
    base = ["-m", "sweep=fashion_local", "hydra.sweep.dir=sweep", f"sweep.budget.minutes={max(checkpoints)}"]
    if quick:
        base += ["dataset=digits", "model=mlp", "backend=torch", "sweep.budget.trials=2"]
    sides = {"hyperband": [f"sweep.sampler={sampler}"] if sampler else [], "random": ["sweep.pruner=none"]}
    sides = {side: overrides for side, overrides in sides.items() if only in (None, side)}
    found: dict = {side: [] for side in sides}
    for seed in seeds:
        for side in sorted(sides, reverse=bool(seed % 2)):  # alternate who goes first
            trials, seconds = sweep(f"sweep.seed={seed}", *sides[side], base=base, study="fashion_local")
            found[side].append([best_by(trials, 60 * m) for m in checkpoints])
            shown = " ".join("-" if v is None else f"{v:.4f}" for v in found[side][-1])
            print(
                f"seed {seed} {side:9s} {len(trials)} trials in {seconds:.0f} s; best by checkpoint: {shown}; "
                f"{_best_trial(trials)}",
                flush=True,
            )
            for line in _trial_lines(trials):
                print(f"  {line}", flush=True)
    print(
        f"\nbest val_acc after t minutes (median of seeds {', '.join(map(str, seeds))}; {'digits, mlp' if quick else 'Fashion-MNIST, cnn'}; "
        f"{probe().describe()}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})"
    )
    print("t (min)    " + " ".join(f"{m:>7g}" for m in checkpoints))
    for side, runs in found.items():
        medians = [_median([run[i] for run in runs]) for i in range(len(checkpoints))]
        print(f"{side:10s} " + " ".join("      -" if m is None else f"{m:7.4f}" for m in medians))


def _best_trial(trials: List[Any]) -> str:
    """The best complete trial: its number, epochs, minute of completion and parameters."""
    done = [t for t in trials if t.state.name == "COMPLETE"]
    if not done:
        return "no trial complete"
    best = max(done, key=lambda t: t.value)
    epochs = best.user_attrs.get("kx.epochs", "all")
    return (
        f"best: trial {best.number}, {epochs} epochs, done at {_minute(best, trials):.1f} min, {best.params}"
    )


def _minute(trial: Any, trials: List[Any]) -> float:
    """The minutes from the sweep's first trial's start to ``trial``'s completion."""
    start = min(t.datetime_start for t in trials if t.datetime_start)
    return (trial.datetime_complete - start).total_seconds() / 60


def _trial_lines(trials: List[Any]) -> List[str]:
    """Each complete trial in the order it completed: the minute, its epochs, val_acc, parameters."""
    done = sorted((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.datetime_complete)
    return [
        f"{_minute(t, trials):5.1f} min  trial {t.number:3d}  "
        f"{t.user_attrs.get('kx.epochs', 'all')} epochs  {t.value:.4f}  "
        + " ".join(
            f"{k.split('.')[-1]}={v:.4g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
            for k, v in t.params.items()
        )
        for t in done
    ]


def _median(reached: List[Optional[float]]) -> Optional[float]:
    """The median, a sweep that had no complete trial yet counting lowest; None when most had none."""
    ranked = sorted((float("-inf") if v is None else v) for v in reached)
    middle = statistics.median_low(ranked)
    return None if middle == float("-inf") else middle


def best_so_far(values: List[Optional[float]]) -> List[float]:
    best, out = float("-inf"), []
    for value in values:
        best = max(best, value if value is not None else float("-inf"))
        out.append(best)
    return out


def compare_samplers(seeds: int, trials: int, epochs: int) -> None:
    curves = {"tpe": [], "random": []}
    for seed in range(seeds):
        for sampler in curves:
            found, _ = sweep(
                f"sweep.sampler={sampler}",
                f"sweep.seed={seed}",
                f"sweep.budget.trials={trials}",
                f"train.epochs={epochs}",
            )
            curves[sampler].append(best_so_far(values(found)))
            shown = " ".join("failed" if v is None else f"{v:.4f}" for v in values(found))
            print(f"seed {seed} {sampler:6s} {shown}", flush=True)
    print(f"\nbest val_acc after n trials (mean of {seeds} seeds; digits, mlp, {epochs} epochs)")
    print("n  " + "  ".join(f"{n:>6d}" for n in range(1, trials + 1)))
    for sampler, runs in curves.items():
        means = [statistics.mean(run[n] for run in runs) for n in range(trials)]
        print(f"{sampler:6s} " + " ".join(f"{m:.4f}" for m in means))


def compare_parallel(trials: int, epochs: int) -> None:
    """1 and 2 at once in the order 1, 2, 2, 1, so that a drift in the machine's load hits both alike."""
    walls = {1: 0.0, 2: 0.0}
    for parallel in (1, 2, 2, 1):
        _, seconds = sweep(
            "sweep.sampler=random",
            "sweep.seed=0",
            f"sweep.budget.trials={trials}",
            f"sweep.budget.parallel={parallel}",
            f"train.epochs={epochs}",
        )
        walls[parallel] += seconds / 2
        print(f"{parallel} at once: {seconds:.1f} s", flush=True)
    print(
        f"\nwall time of {trials} trials (mean of 2): 1 at once {walls[1]:.1f} s, 2 at once {walls[2]:.1f} s, "
        f"ratio {walls[2] / walls[1]:.2f} (< 1: two at once pay off)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="--part time: seeds from this one (one seed a session)"
    )
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--wall-trials", type=int, default=4)
    parser.add_argument("--part", choices=("all", "time", "samplers", "parallel"), default="all")
    parser.add_argument("--minutes", default="15,30,60", help="--part time: the checkpoints, in minutes")
    parser.add_argument("--only", choices=("hyperband", "random"), help="--part time: run one side only")
    parser.add_argument(
        "--sampler", choices=("random", "tpe"), help="--part time: the Hyperband side's sampler"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="--part time on digits, 2 trials a side, checkpoints of 6, 18 and 60 seconds, one seed",
    )
    parser.add_argument(
        "--backend", default="torch", help="torch: the quickest trials (no SavedModel export)"
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.minutes, args.part = 1, "0.1,0.3,1", "time"
    if args.part in ("all", "time"):
        print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}", flush=True)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        compare_within_time(
            seeds, [float(m) for m in args.minutes.split(",")], args.quick, args.only, args.sampler
        )
    BASE.append(f"backend={args.backend}")
    if args.part in ("all", "samplers"):
        compare_samplers(args.seeds, args.trials, args.epochs)
    if args.part in ("all", "parallel"):
        compare_parallel(args.wall_trials, args.epochs)


if __name__ == "__main__":
    main()
