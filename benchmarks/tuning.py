"""Local tuning with kx's sweeper on digits: TPE against random search at the same trial budget, and
the wall time of one trial at a time against two at once.

Every sweep is a real ``train.py -m sweep=quick`` command (fresh trial processes, MLflow, the
study on SQLite) in its own temporary folder. The first table is the best objective after each
trial count, averaged over the seeds, for TPE and for random search with the same seeds; the
second compares the wall time of the same sweep run with 1 and with 2 trials at once, alternately
(1, 2, 2, 1; ratio < 1: two at once pay off).

    python benchmarks/tuning.py [--seeds 3] [--trials 8] [--epochs 3] [--wall-trials 4] [--part samplers|parallel] [--backend torch]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Tuple

PROJECT = Path(__file__).resolve().parents[1]
BASE = ["-m", "sweep=quick", "dataset=digits", "model=mlp", "hydra.sweep.dir=sweep"]


def sweep(*overrides: str) -> Tuple[List[Optional[float]], float]:
    """Run one sweep; its trials' objectives in trial order (None when not complete) and wall seconds."""
    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(PROJECT / "train.py"), *BASE, *overrides], cwd=tmp, check=True,
                       capture_output=True)  # fmt: skip
        seconds = time.perf_counter() - start
        study = optuna.load_study(study_name="quick", storage=f"sqlite:///{tmp}/sweeps.db")
        return [t.value for t in sorted(study.trials, key=lambda t: t.number)], seconds


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
            values, _ = sweep(f"sweep.sampler={sampler}", f"sweep.seed={seed}", f"sweep.budget.trials={trials}",
                              f"train.epochs={epochs}")  # fmt: skip
            curves[sampler].append(best_so_far(values))
            shown = " ".join("failed" if v is None else f"{v:.4f}" for v in values)
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
        _, seconds = sweep("sweep.sampler=random", "sweep.seed=0", f"sweep.budget.trials={trials}",
                           f"sweep.budget.parallel={parallel}", f"train.epochs={epochs}")  # fmt: skip
        walls[parallel] += seconds / 2
        print(f"{parallel} at once: {seconds:.1f} s", flush=True)
    print(
        f"\nwall time of {trials} trials (mean of 2): 1 at once {walls[1]:.1f} s, 2 at once {walls[2]:.1f} s, "
        f"ratio {walls[2] / walls[1]:.2f} (< 1: two at once pay off)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--wall-trials", type=int, default=4)
    parser.add_argument("--part", choices=("all", "samplers", "parallel"), default="all")
    parser.add_argument(
        "--backend", default="torch", help="torch: the quickest trials (no SavedModel export)"
    )
    args = parser.parse_args()
    BASE.append(f"backend={args.backend}")
    if args.part in ("all", "samplers"):
        compare_samplers(args.seeds, args.trials, args.epochs)
    if args.part in ("all", "parallel"):
        compare_parallel(args.wall_trials, args.epochs)


if __name__ == "__main__":
    main()
