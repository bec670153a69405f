"""kx's batch norm against Keras's own layer in the reference CNN: fused, and folded into a convolution.

The same model (the reference Fashion-MNIST CNN) trains on the same random batches of 256 with Keras's
layer (keras), kx's fused one (fused), or kx's fused one with the first block's convolution and batch
norm as one :class:`kx.models.conv_batch_norm.ConvBatchNormalization` (folded: what kx trains on a
CPU), in float32 and under Keras's ``mixed_bfloat16`` policy, each in a fresh process, in turn (keras, fused,
folded, keras, ...) so that drift in the machine's speed hits all alike. The figures are the ratios of
the median training-step times per precision (fused / keras, folded / fused); below 1 is faster.

    python benchmarks/batch_norm.py [--steps 60] [--repeats 2]
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/batch_norm.py --precision float32   # as on a CPU without bfloat16
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

STEP_TIMES = """
import json, os, sys, time
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np
sys.path.insert(0, {project!r})
from kx.models.conv_batch_norm import ConvBatchNormalization
from kx.models.fused_batch_norm import FusedBatchNormalization

keras.mixed_precision.set_global_policy({policy!r})
norm = keras.layers.BatchNormalization if {variant!r} == "keras" else FusedBatchNormalization
if {variant!r} == "folded":
    first = [ConvBatchNormalization({{"filters": 64, "kernel_size": 3, "padding": "same"}}, {{}})]
else:
    first = [keras.layers.Conv2D(64, 3, padding="same"), norm()]
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((28, 28, 1)),
    *first, keras.layers.Activation("relu"), keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(128, 3, padding="valid"), norm(), keras.layers.Activation("relu"), keras.layers.MaxPooling2D(2),
    keras.layers.Flatten(), keras.layers.Dense(512, activation="relu"), keras.layers.Dropout(0.3),
    keras.layers.Dense(10), keras.layers.Activation("softmax", dtype="float32"),
])
"""
# the CNN ``model`` of 28x28 images trained on random batches of 256: each step's time in ``steps``
TIMED_FIT = """
model.compile(keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), "sparse_categorical_crossentropy")
x = np.random.rand(256 * {steps}, 28, 28, 1).astype("float32")
y = np.random.randint(0, 10, len(x))
model.fit(x[:2560], y[:2560], batch_size=256, verbose=0)  # traces the step
ends = []
stamp = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
model.fit(x, y, batch_size=256, verbose=0, callbacks=[stamp])
steps = [b - a for a, b in zip(ends, ends[1:])]
"""


VARIANTS = ("keras", "fused", "folded")


def step_times(policy: str, variant: str, steps: int) -> list:
    """One fresh process's training-step times, in seconds."""
    script = STEP_TIMES + TIMED_FIT + "print(json.dumps(steps))\n"
    code = script.format(project=str(PROJECT), policy=policy, variant=variant, steps=steps)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"batch_norm.py: the {policy} {variant} run failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant and precision")
    parser.add_argument("--precision", choices=("both", "bfloat16", "float32"), default="both")
    args = parser.parse_args()
    policies = {
        "both": ("mixed_bfloat16", "float32"),
        "bfloat16": ("mixed_bfloat16",),
        "float32": ("float32",),
    }
    for policy in policies[args.precision]:
        times: dict = {variant: [] for variant in VARIANTS}
        for _ in range(args.repeats):
            for variant in VARIANTS:
                times[variant] += step_times(policy, variant, args.steps)
        ms = {variant: 1000 * statistics.median(times[variant]) for variant in VARIANTS}
        print(
            f"{policy:15s} Keras BatchNormalization {ms['keras']:6.1f} ms/step, "
            f"kx FusedBatchNormalization {ms['fused']:6.1f} ms/step: ratio {ms['fused'] / ms['keras']:.2f}; "
            f"first block folded {ms['folded']:6.1f} ms/step: ratio to fused {ms['folded'] / ms['fused']:.2f}"
        )


if __name__ == "__main__":
    main()
