"""The reference CNN on every installed backend, in one run: each engine's speed levers and accuracy.

Each variant (a backend with some overrides) trains in its own process through kx's Backend API on
the same data; the table reports training samples/s (median epoch, the first left out: it includes
compilation), inference samples/s on the validation set and the best validation accuracy, and each
variant's speed relative to its backend's defaults. The variants switch one lever at a time:
``backend.jit`` (XLA for tensorflow and jax, torch.compile for torch, hybridize for mxnet),
``backend.precision``, op determinism, the input pipeline, the batch size, threads and the image
layout.

    python benchmarks/backends.py                      # Fashion-MNIST, first 12,000 images, 3 epochs
    python benchmarks/backends.py --quick              # same-shaped synthetic data, 2 epochs
    python benchmarks/backends.py --parity             # kx's default experiment on every backend:
                                                       # final accuracies and their spread (goal <= 0.005)
    python benchmarks/backends.py --parity --limit 12000   # the same on the first 12,000 images
    python benchmarks/backends.py --ab [--rounds 2]     # the float32 levers, each against float32
                                                       # defaults in alternating runs (A B A B),
                                                       # synthetic 28x28 data (--limit images):
                                                       # wall and CPU seconds an epoch, ratios

``--ab`` forces ``backend.precision=float32`` on both sides; an ``env:NAME=VALUE`` item of a lever sets
an environment variable for that side's process. To mimic a CPU without bfloat16 on one that has it:
``ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/backends.py --ab``.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from kx.backends import EpochMonitor  # noqa: E402  (this checkout's kx)

ENGINES = {"tensorflow": "tensorflow", "mxnet": "mxnet", "jax": "jax", "torch": "torch"}
VARIANTS: Dict[str, List[List[str]]] = {  # the first of each is the backend's defaults
    "tensorflow": [
        [],
        ["backend.jit=on"],
        ["backend.precision=float32"],
        ["train.deterministic=true"],
        ["backend.input_pipeline=arrays"],
        ["train.batch_size=128"],
        ["train.batch_size=512"],
        ["backend.threads=1"],
        ["backend.image_layout=channels_first"],
    ],
    "jax": [[], ["backend.precision=float32"], ["backend.image_layout=channels_last"]],
    "torch": [[], ["backend.jit=on"], ["backend.precision=float32"], ["backend.image_layout=channels_last"]],
    "mxnet": [[], ["backend.jit=off"]],
}
FLOAT32 = ["backend=tensorflow", "backend.precision=float32"]
FLOAT32_LEVERS: List[List[str]] = [  # each against FLOAT32 alone, on tensorflow unless it says
    ["backend.steps_per_execution=1"],  # against auto (several on tensorflow)
    ["env:TF_NUM_INTEROP_THREADS=1"],
    ["env:TF_ENABLE_ONEDNN_OPTS=0"],  # TensorFlow's Eigen kernels instead of oneDNN's
    ["backend.image_layout=channels_first"],
    ["backend.jit=on"],
    ["backend=torch", "backend.precision=float32"],
    ["backend=jax", "backend.precision=float32"],
]


class _CpuTimed(EpochMonitor):
    """An epoch monitor that also records the process's CPU seconds per epoch: on a shared machine
    they move less with the load than wall time."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cpu_seconds: List[float] = []

    def begin_epoch(self) -> None:
        self._cpu_start = time.process_time()
        super().begin_epoch()

    def end_epoch(self, epoch: int, metrics: Dict[str, float]) -> bool:
        self.cpu_seconds.append(time.process_time() - self._cpu_start)
        return super().end_epoch(epoch, metrics)


def worker(overrides: List[str], quick: bool) -> None:
    """Train once in this process and print one JSON line of measurements."""
    from kx import pipeline
    from kx.backends.checkpoint import Checkpoint
    from kx.run_config import compose

    dataset = ["dataset=synthetic", "dataset.train_samples=12000", "dataset.validation_samples=2000"]
    cfg = compose(["train.early_stopping.enabled=false", *(dataset if quick else []), *overrides])
    cfg, backend, data = pipeline.prepare(cfg)  # as train.py
    monitor = _CpuTimed(patience=None)
    backend.fit(data, cfg.train, monitor, Checkpoint(None))
    backend.predict(data.x_val[:256])  # warm-up
    start = time.perf_counter()
    backend.predict(data.x_val)
    infer = time.perf_counter() - start
    epoch = statistics.median(monitor.epoch_seconds[1:] or monitor.epoch_seconds)
    print(
        json.dumps(
            {
                "train_sps": len(data.y_train) / epoch,
                "infer_sps": len(data.y_val) / infer,
                "best_val_acc": max(monitor.history["val_acc"]),
                "final_val_acc": monitor.history["val_acc"][-1],
                "epoch_seconds": epoch,
                "epoch_cpu_seconds": statistics.median(monitor.cpu_seconds[1:] or monitor.cpu_seconds),
            }
        )
    )


def measure(overrides: List[str], quick: bool) -> dict:
    """One worker process's figures; ``env:NAME=VALUE`` items set its environment."""
    env = dict(os.environ, **dict(o[4:].split("=", 1) for o in overrides if o.startswith("env:")))
    overrides = [o for o in overrides if not o.startswith("env:")]
    cmd = [sys.executable, __file__, "--worker", *(["--quick"] if quick else []), "--", *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"{' '.join(overrides)} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def levers(args: argparse.Namespace, backends: List[str]) -> None:
    epochs = args.epochs or (2 if args.quick else 3)
    limit = args.limit or 12000
    common = [f"train.epochs={epochs}", *([] if args.quick else [f"dataset.limit={limit}"])]
    print(
        f"reference CNN, {'synthetic 28x28' if args.quick else f'Fashion-MNIST, {limit} images'}, "
        f"{epochs} epochs, kx's default training settings"
    )
    print(
        f"{'variant':<52} {'train samples/s':>16} {'infer samples/s':>16} {'val_acc':>8} {'vs default':>10}"
    )
    for name in backends:
        base = None
        for changes in VARIANTS[name]:
            r = measure([f"backend={name}", *common, *changes], args.quick)
            if not r:
                continue
            base = base or r
            label = f"{name} {' '.join(changes) or '(defaults)'}"
            print(
                f"{label:<52} {r['train_sps']:>16.0f} {r['infer_sps']:>16.0f} {r['best_val_acc']:>8.4f} "
                f"{r['train_sps'] / base['train_sps']:>9.2f}x",
                flush=True,
            )


def side_by_side(args: argparse.Namespace) -> None:
    """Each float32 lever against the float32 defaults, alternately (A B A B ...): the ratio of the
    median epoch times (> 1: the lever is faster)."""
    from kx.cpu import probe

    common = [
        "dataset=synthetic",
        f"dataset.train_samples={args.limit or 3072}",
        "dataset.validation_samples=512",
        f"train.epochs={args.epochs or 2}",
    ]
    print(f"CPU: {probe().describe()}; load average {os.getloadavg()[0]:.2f}")
    print(
        f"reference CNN, float32, synthetic 28x28 (a step costs what a Fashion-MNIST step does), "
        f"{' '.join(common[1:])}, {args.rounds} rounds A B; epoch times: the last epochs"
    )
    for lever in [lever for lever in FLOAT32_LEVERS if any(args.only in item for item in lever)]:
        runs: Dict[str, List[dict]] = {"A": [], "B": []}
        for _ in range(args.rounds):
            for side, changes in (("A", []), ("B", lever)):
                r = measure([*FLOAT32, *common, *changes], quick=False)
                runs[side] += [r] if r else []
        if runs["A"] and runs["B"]:
            a, b = (
                {k: statistics.median(r[k] for r in runs[s]) for k in ("epoch_seconds", "epoch_cpu_seconds")}
                for s in ("A", "B")
            )
            print(
                f"{' '.join(lever):<40} wall {a['epoch_seconds']:6.2f} -> {b['epoch_seconds']:6.2f} s an epoch "
                f"{a['epoch_seconds'] / b['epoch_seconds']:5.2f}x; CPU {a['epoch_cpu_seconds']:6.2f} -> "
                f"{b['epoch_cpu_seconds']:6.2f} s {a['epoch_cpu_seconds'] / b['epoch_cpu_seconds']:5.2f}x",
                flush=True,
            )


def parity(backends: List[str], limit: Optional[int]) -> None:
    """kx's default experiment (default epochs; all data unless ``limit``) on each backend: the spread
    of final accuracies."""
    finals = {}
    for name in backends:
        r = measure([f"backend={name}", *([f"dataset.limit={limit}"] if limit else [])], quick=False)
        if r:
            finals[name] = r["final_val_acc"]
            print(
                f"{name:<11} final val_acc {r['final_val_acc']:.4f} (best {r['best_val_acc']:.4f}, "
                f"{r['epoch_seconds']:.0f} s an epoch)",
                flush=True,
            )
    if len(finals) > 1:
        spread = max(finals.values()) - min(finals.values())
        print(f"spread of final val_acc across backends: {spread:.4f} (goal <= 0.005)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: 3, or 2 with --quick")
    parser.add_argument("--quick", action="store_true", help="synthetic data shaped like Fashion-MNIST")
    parser.add_argument(
        "--limit", type=int, help="train on the first N images (default: 12,000; --parity: all)"
    )
    parser.add_argument("--parity", action="store_true", help="the default experiment on every backend")
    parser.add_argument("--backends", nargs="*", default=list(ENGINES))
    parser.add_argument("--ab", action="store_true", help="the float32 levers side by side")
    parser.add_argument("--rounds", type=int, default=2, help="--ab: A B pairs per lever")
    parser.add_argument("--only", default="", help="--ab: the levers that contain this text")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.overrides, args.quick)
        return
    if args.ab:
        side_by_side(args)
        return
    installed = [n for n in args.backends if importlib.util.find_spec(ENGINES[n]) is not None]
    for name in set(args.backends) - set(installed):
        print(f"{name}: not installed, skipped", file=sys.stderr)
    parity(installed, args.limit) if args.parity else levers(args, installed)


if __name__ == "__main__":
    main()
