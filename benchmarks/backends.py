"""The reference CNN on every installed backend, in one run: training and inference speed, accuracy.

Each backend (and, for the Keras engines, each image layout) trains in its own process through
kx's Backend API on the same data with the same config; the table reports training samples/s
(median epoch, first epoch left out: it includes compilation), inference samples/s on the
validation set, and the best validation accuracy.

    python benchmarks/backends.py                 # real Fashion-MNIST, 5 epochs
    python benchmarks/backends.py --quick         # same-shaped synthetic data, 2 epochs
"""

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
ENGINES = {"tensorflow": "tensorflow", "mxnet": "mxnet", "jax": "jax", "torch": "torch"}


def worker(backend_name: str, layout: str, epochs: int, quick: bool, limit: int) -> None:
    """Train once in this process and print one JSON line of measurements."""
    sys.path.insert(0, str(PROJECT))
    from kx.backends import EpochMonitor, create_backend
    from kx.backends.checkpoint import Checkpoint
    from kx.config import compose
    from kx.data import load_dataset

    dataset = ["dataset=synthetic", "dataset.train_samples=12000", "dataset.validation_samples=2000"]
    overrides = [f"backend={backend_name}", f"backend.image_layout={layout}", f"train.epochs={epochs}",
                 "train.early_stopping.enabled=false", *(dataset if quick else [])]  # fmt: skip
    if limit:
        overrides.append(f"dataset.limit={limit}")
    cfg = compose(overrides)
    backend = create_backend(cfg.backend)
    backend.prepare(cfg.train.seed, deterministic=False)
    data = load_dataset(cfg.dataset, backend.image_layout, cfg.train.seed)
    backend.build(cfg.model, data.input_shape, data.num_classes)
    monitor = EpochMonitor(patience=None)
    backend.fit(data, cfg.train, monitor, Checkpoint(None))
    backend.predict(data.x_val[:256])  # warm-up
    start = time.perf_counter()
    backend.predict(data.x_val)
    infer = time.perf_counter() - start
    epoch = statistics.median(monitor.epoch_seconds[1:] or monitor.epoch_seconds)
    print(json.dumps({
        "train_sps": len(data.y_train) / epoch,
        "infer_sps": len(data.y_val) / infer,
        "best_val_acc": max(monitor.history["val_acc"]),
        "epoch_seconds": epoch,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: 5, or 2 with --quick")
    parser.add_argument("--quick", action="store_true", help="synthetic data shaped like Fashion-MNIST")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N samples only")
    parser.add_argument("--backends", nargs="*", default=list(ENGINES))
    parser.add_argument("--worker", nargs=2, metavar=("BACKEND", "LAYOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    epochs = args.epochs or (2 if args.quick else 5)
    if args.worker:
        worker(*args.worker, epochs, args.quick, args.limit)
        return

    rows = []
    for name in args.backends:
        if importlib.util.find_spec(ENGINES[name]) is None:
            print(f"{name}: not installed, skipped", file=sys.stderr)
            continue
        layouts = ["channels_first"] if name == "mxnet" else ["channels_last", "channels_first"]
        for layout in layouts:
            cmd = [sys.executable, __file__, "--worker", name, layout, f"--epochs={epochs}",
                   f"--limit={args.limit}", *(["--quick"] if args.quick else [])]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{name}/{layout} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append((name, layout, json.loads(proc.stdout.strip().splitlines()[-1])))

    data = "synthetic 28x28 (--quick)" if args.quick else "Fashion-MNIST"
    print(f"\nreference CNN, {data}, {epochs} epochs, batch 128, SGD+Nesterov")
    print(f"{'backend':<11} {'layout':<15} {'train samples/s':>16} {'infer samples/s':>16} {'val_acc':>8}")
    for name, layout, r in rows:
        print(
            f"{name:<11} {layout:<15} {r['train_sps']:>16.0f} {r['infer_sps']:>16.0f} {r['best_val_acc']:>8.4f}"
        )
    base = next((r for n, lay, r in rows if n == "tensorflow" and lay == "channels_last"), None)
    if base:
        for name, layout, r in rows:
            print(f"training speed {name}/{layout} vs tensorflow/channels_last: "
                  f"{r['train_sps'] / base['train_sps']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
