"""kx's Winograd convolution against Keras's Conv2D in the reference CNN's training step, float32.

The reference Fashion-MNIST CNN as kx trains it on a CPU in float32 (the first block's batch norm
folded into its convolution, fused batch norm, max-pooling before ReLU) trains on the same random
batches of 256 with its second convolution (3x3, 64 to 128 channels) as Keras's ``Conv2D`` (keras) or as
:class:`kx.models.winograd.WinogradConv2D` (winograd: what kx trains there), each in a fresh
process, in turn (keras, winograd, keras, ...) so that drift in the machine's speed hits both alike.
The figure is the ratio of the median training-step times, winograd / keras; below 1 is faster.

``--grid`` times one convolution alone instead (forward and both gradients, batch 256, float32) for
several input sizes, channels and filters, TensorFlow's own against each Winograd algorithm whose
blocks make up the output whole (ratios in brackets), alternating: what decides the channels and
filters kx uses it from (:data:`kx.models.winograd.MIN_CHANNELS`, ``MIN_FILTERS``) on the CPU it
runs on.

    python benchmarks/winograd.py [--steps 60] [--repeats 2]
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/winograd.py   # as on a CPU with AVX2 only
    python benchmarks/winograd.py --grid
    python benchmarks/winograd.py --quick [--grid]   # the same code in seconds
"""

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from batch_norm import TIMED_FIT  # the same timed training as benchmarks/batch_norm.py

PROJECT = Path(__file__).resolve().parents[1]

STEP_TIMES = """
import json, os, sys, time
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np
sys.path.insert(0, {project!r})
from kx.models import conv_batch_norm, fused_batch_norm, winograd

keras.utils.set_random_seed(0)
second = {{"filters": 128, "kernel_size": 3, "padding": "valid"}}
conv = winograd.layer(second, 64) if {variant!r} == "winograd" else keras.layers.Conv2D(**second)
model = keras.Sequential([
    keras.Input((28, 28, 1)),
    *conv_batch_norm.layers({{"filters": 64, "kernel_size": 3, "padding": "same"}}, {{}}, 1),
    keras.layers.MaxPooling2D(2), keras.layers.Activation("relu"),
    conv, fused_batch_norm.layer(), keras.layers.MaxPooling2D(2), keras.layers.Activation("relu"),
    keras.layers.Flatten(), keras.layers.Dense(512, activation="relu"), keras.layers.Dropout(0.3),
    keras.layers.Dense(10), keras.layers.Activation("softmax", dtype="float32"),
])
"""

VARIANTS = ("keras", "winograd")
CNN = (14, 64, 128)  # the reference CNN's second convolution: input size, channels, filters

GRID = [  # input height and width, input channels, filters ('valid': outputs 2 smaller)
    (14, 8, 16),
    (14, 16, 32),
    (14, 32, 32),
    (14, 32, 64),
    (14, 16, 64),
    CNN,
    (14, 128, 128),
    (8, 64, 128),
    (10, 64, 128),
    (26, 64, 128),
    (30, 64, 128),
]


def grid(shapes: list, repeats: int) -> None:
    """Forward and backward of one convolution per shape: TensorFlow's, and each Winograd algorithm
    whose blocks make up the output whole, alternating."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np
    import tensorflow as tf

    from kx.models import winograd, winograd_algorithms

    for size, channels, filters in shapes:
        state = np.random.RandomState(0)
        x = tf.constant(state.normal(size=(256, size, size, channels)).astype("float32"))
        kernel = tf.Variable(state.normal(size=(3, 3, channels, filters)).astype("float32"))
        upstream = tf.constant(state.normal(size=(256, size - 2, size - 2, filters)).astype("float32"))
        steps = {"TensorFlow": _step(_direct, x, kernel, upstream)}
        for algorithm in winograd_algorithms.fitting(x.shape, "valid"):
            conv = functools.partial(winograd.convolve, algorithm=algorithm)
            steps[f"F({algorithm.out}x{algorithm.out})"] = _step(conv, x, kernel, upstream)
        times: dict = {name: [] for name in steps}
        for _ in range(5 * repeats):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
        found = {name: statistics.median(found) for name, found in times.items()}
        direct = found.pop("TensorFlow")
        winograds = ", ".join(f"{name} {1000 * t:6.1f} ms ({t / direct:.2f})" for name, t in found.items())
        print(
            f"{size}x{size}x{channels} to {filters}: TensorFlow {1000 * direct:6.1f} ms, {winograds}",
            flush=True,
        )


def _direct(x: Any, kernel: Any, padding: str) -> Any:
    """TensorFlow's own convolution, called as :func:`kx.models.winograd.convolve` is."""
    import tensorflow as tf

    return tf.nn.conv2d(x, kernel, 1, padding.upper())


def _step(conv: Any, x: Any, kernel: Any, upstream: Any) -> Any:
    """The forward pass of ``conv`` and the gradients of ``x`` and ``kernel``, traced once."""
    import tensorflow as tf

    @tf.function
    def step() -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(conv(x, kernel, "valid") * upstream)
        return tape.gradient(loss, [x, kernel])

    step()  # traces
    return step


def step_times(variant: str, steps: int) -> list:
    """One fresh process's training-step times, in seconds."""
    script = STEP_TIMES + TIMED_FIT + 'print(json.dumps({{"layer": type(conv).__name__, "steps": steps}}))\n'
    code = script.format(project=str(PROJECT), variant=variant, steps=steps)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"winograd.py: the {variant} run failed:\n{proc.stderr[-2000:]}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    if variant == "winograd" and found["layer"] != "WinogradConv2D":
        sys.exit(
            "winograd.py: kx does not use Winograd here (AVX-512, or a GPU): nothing to compare; "
            "ONEDNN_MAX_CPU_ISA=AVX2 measures it as on a CPU with AVX2 only"
        )
    return found["steps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant")
    parser.add_argument("--grid", action="store_true", help="one convolution alone, per shape")
    parser.add_argument("--quick", action="store_true", help="3 steps, one run each; --grid: one shape")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 3, 1
    sys.path.insert(0, str(PROJECT))
    from kx.cpu import probe

    print(f"CPU: {probe().describe()}; load average {os.getloadavg()[0]:.2f}")
    if args.grid:
        grid([CNN] if args.quick else GRID, args.repeats)
        return
    times: dict = {variant: [] for variant in VARIANTS}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            times[variant] += step_times(variant, args.steps)
    ms = {variant: 1000 * statistics.median(times[variant]) for variant in VARIANTS}
    print(
        f"float32 training step, batch 256: Keras Conv2D {ms['keras']:6.1f} ms, "
        f"kx WinogradConv2D {ms['winograd']:6.1f} ms: ratio {ms['winograd'] / ms['keras']:.2f}"
    )


if __name__ == "__main__":
    main()
