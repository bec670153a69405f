"""How long ``launch.py ... --dry-run`` takes to answer: a training job and a tuning job.

    python benchmarks/dry_run.py                        # this checkout, median of 3 runs each
    python benchmarks/dry_run.py --baseline ../main     # and another checkout's, side by side

Each dry run is a fresh process, as a user runs it (interpreter start, config, SDK import, packaging
code and data, building and validating the request). It is single-threaded, so its CPU time (user +
system) is the wall time it takes on an idle machine; on a busy one the wall time grows but the CPU
time barely does. Runs of both checkouts alternate; the ratio is the comparison to read. A baseline
that predates tuning jobs builds a training job for ``sweep=...`` (it ignores the sweep).
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

PROJECT_DIR = Path(__file__).resolve().parents[1]
COMMON = [
    "target=sagemaker",
    "target.role=arn:aws:iam::111122223333:role/kx-benchmark",
    "target.bucket=kx-benchmark",
    "target.region=us-east-1",  # a dry run sends nothing; the SDK still needs a region to build requests
]
CASES = {
    "training (fashion_mnist)": [],
    "tuning (sweep=fashion)": ["sweep=fashion"],
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dry_run(checkout: Path, args: List[str]) -> Optional[Tuple[float, float]]:
    """(wall, CPU) seconds of one dry run, or None when that checkout cannot build this request."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "AWS_EC2_METADATA_DISABLED": "true"}
    started, cpu = time.perf_counter(), cpu_seconds()
    proc = subprocess.run(
        [sys.executable, str(checkout / "launch.py"), *COMMON, *args, "--dry-run"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = (time.perf_counter() - started, cpu_seconds() - cpu)
    if proc.returncode:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{checkout}: launch.py {' '.join(args)} --dry-run failed: {reason}", file=sys.stderr)
        return None
    return seconds


Seconds = Optional[Tuple[float, float]]


def median(runs: List[Seconds]) -> Seconds:
    if None in runs:
        return None
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def measure(checkouts: Dict[str, Path], repeats: int) -> Dict[str, Dict[str, Seconds]]:
    """Median (wall, CPU) seconds per case and checkout, the checkouts' runs interleaved."""
    times: Dict[str, Dict[str, List[Seconds]]] = {c: {k: [] for k in checkouts} for c in CASES}
    for _ in range(repeats):
        for case, args in CASES.items():
            for label, checkout in checkouts.items():
                times[case][label].append(dry_run(checkout, args))
    return {case: {label: median(runs) for label, runs in per.items()} for case, per in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="another checkout of kx to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    checkouts = {"this": PROJECT_DIR, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    results = measure(checkouts, args.repeats)
    print(f"launch.py --dry-run, median of {args.repeats} fresh processes ({os.cpu_count()} CPUs)")
    for case, per in results.items():
        cells = [
            f"{label} " + ("-" if s is None else f"{s[0]:.2f} s wall, {s[1]:.2f} s CPU")
            for label, s in per.items()
        ]
        this, base = per.get("this"), per.get("baseline")
        ratio = f"  CPU ratio this/baseline {this[1] / base[1]:.2f}" if this and base else ""
        print(f"  {case:26s} " + "  ".join(cells) + ratio)


if __name__ == "__main__":
    main()
