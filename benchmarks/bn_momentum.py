"""Short runs and batch-norm momentum: validation accuracy of the reference CNN on 5,000 images.

Runs ``python train.py`` as a user would (tracking off) for each backend, with Keras's fixed
momentum 0.99 (the baseline) and with kx's default (``model.bn_momentum`` null: automatic), and
prints the best and final validation accuracy side by side. The default full-length run (20 epochs
on 60,000 images, 9,380 steps) resolves to 0.99, so its result is unchanged by construction; the
last line shows the momentum each run length resolves to.

    python benchmarks/bn_momentum.py [--backends tensorflow mxnet] [--epochs 3] [--limit 5000]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from kx.backends.bn_momentum import auto_momentum  # noqa: E402


def run(backend: str, momentum: str, epochs: int, limit: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                str(PROJECT / "train.py"),
                f"backend={backend}",
                "dataset=fashion_mnist",
                f"dataset.limit={limit}",
                f"train.epochs={epochs}",
                f"model.bn_momentum={momentum}",
                "train.early_stopping.enabled=false",
                "tracking.enabled=false",
                "hydra.run.dir=run",
            ],
            cwd=tmp,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return json.loads((Path(tmp) / "run" / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "mxnet"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=5000)
    args = parser.parse_args()
    steps = args.epochs * -(-args.limit // 128)
    print(f"reference CNN, {args.limit} images, {args.epochs} epochs ({steps} steps), batch 128")
    for backend in args.backends:
        base = run(backend, "0.99", args.epochs, args.limit)
        auto = run(backend, "null", args.epochs, args.limit)
        for name, m in (("0.99 (baseline)", base), (f"auto {auto_momentum(steps)}", auto)):
            print(
                f"{backend:10} momentum {name:16} train acc {m['final']['acc']:.4f}  "
                f"best val_acc {m['best']['val_acc']:.4f}  final val_acc {m['final']['val_acc']:.4f}"
            )
        ratio = auto["best"]["val_acc"] / base["best"]["val_acc"]
        print(f"{backend:10} best val_acc ratio auto / 0.99 = {ratio:.2f}")
    print(
        f"momentum by run length: 120 steps {auto_momentum(120)}, 400 steps {auto_momentum(400)}, "
        f"9380 steps (default full run) {auto_momentum(9380)}"
    )


if __name__ == "__main__":
    main()
