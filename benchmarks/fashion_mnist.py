"""The default experiment on the real Fashion-MNIST: best validation accuracy and wall time.

Runs ``python train.py`` as a user would (tracking on, into a temporary store) and reads the
run's metrics.json. Goal: best val_acc >= 0.91 (the reference workflow reports 0.9126).

    python benchmarks/fashion_mnist.py [--backend mxnet] [override ...]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides, e.g. train.epochs=10")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(PROJECT / "train.py"),
                f"backend={args.backend}",
                "hydra.run.dir=run",
                *args.overrides,
            ],
            cwd=tmp,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        metrics = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    best = metrics["best"]["val_acc"]
    print(f"backend={args.backend} epochs run={metrics['epochs']} best epoch={metrics['best_epoch']}")
    print(f"best val_acc={best:.4f} (goal >= 0.91, reference 0.9126): {'met' if best >= 0.91 else 'NOT met'}")
    median = statistics.median(metrics["epoch_seconds"])
    print(f"wall time {wall:.0f} s, median epoch {median:.1f} s")


if __name__ == "__main__":
    main()
