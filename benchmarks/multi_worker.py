"""Multi-worker training on one machine: the same job rehearsed on 1 host and on N hosts.

Runs ``launch.py target=sagemaker_local`` twice with the same global batch (the baseline with
``target.instance_count=1`` in the same run) and prints the median epoch time of each, their ratio
and both accuracies. Every host runs on this machine, so the ratio measures what the
data-parallel machinery costs (gradient all-reduce or parameter servers, sharding, statistics
averaging) when the hosts share the same CPUs, not the speed-up of N real instances.

    python benchmarks/multi_worker.py [--backend mxnet] [--hosts 2] [override ...]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def rehearse(folder: Path, hosts: int, args: argparse.Namespace) -> dict:
    """Rehearse the job on ``hosts`` hosts; return the first host's metrics.json."""
    folder.mkdir()
    subprocess.run(
        [
            sys.executable,
            str(PROJECT / "launch.py"),
            "target=sagemaker_local",
            f"target.instance_count={hosts}",
            f"backend={args.backend}",
            f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
            *args.overrides,
        ],
        cwd=folder,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (job,) = (p for p in (folder / "outputs" / "sagemaker_local").iterdir() if p.name != "s3")
    first = job if hosts == 1 else job / "algo-1"
    return json.loads((first / "output" / "data" / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="tensorflow", choices=["tensorflow", "mxnet"])
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument(
        "overrides",
        nargs="*",
        default=["dataset.limit=12000", "train.epochs=3"],
        help="launch.py overrides (default: dataset.limit=12000 train.epochs=3)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {hosts: rehearse(Path(tmp) / f"hosts{hosts}", hosts, args) for hosts in (1, args.hosts)}
    median = {hosts: statistics.median(m["epoch_seconds"]) for hosts, m in runs.items()}
    for hosts, metrics in runs.items():
        print(
            f"{args.backend} on {hosts} host(s): median epoch {median[hosts]:.1f} s, "
            f"best val_acc {metrics['best']['val_acc']:.4f}"
        )
    print(f"epoch time ratio {args.hosts} hosts / 1 host: {median[args.hosts] / median[1]:.2f}")


if __name__ == "__main__":
    main()
