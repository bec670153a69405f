"""kx's batch norm on TensorFlow's fused kernel against Keras's own layer, in the reference CNN.

The same model (the reference Fashion-MNIST CNN) trains on the same random batches of 256 with either
layer, in float32 and under Keras's ``mixed_bfloat16`` policy, each in a fresh process, alternately
(keras, kx, keras, kx, ...) so that drift in the machine's speed hits both alike. The figure is the
ratio of the median training-step times (kx / Keras) per precision; below 1 is faster.

    python benchmarks/batch_norm.py [--steps 60] [--repeats 2]
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
from kx.models.fused_batch_norm import FusedBatchNormalization

keras.mixed_precision.set_global_policy({policy!r})
norm = FusedBatchNormalization if {fused!r} else keras.layers.BatchNormalization
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((28, 28, 1)),
    keras.layers.Conv2D(64, 3, padding="same"), norm(), keras.layers.Activation("relu"), keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(128, 3, padding="valid"), norm(), keras.layers.Activation("relu"), keras.layers.MaxPooling2D(2),
    keras.layers.Flatten(), keras.layers.Dense(512, activation="relu"), keras.layers.Dropout(0.3),
    keras.layers.Dense(10), keras.layers.Activation("softmax", dtype="float32"),
])
model.compile(keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), "sparse_categorical_crossentropy")
x = np.random.rand(256 * {steps}, 28, 28, 1).astype("float32")
y = np.random.randint(0, 10, len(x))
model.fit(x[:2560], y[:2560], batch_size=256, verbose=0)  # traces the step
ends = []
stamp = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
model.fit(x, y, batch_size=256, verbose=0, callbacks=[stamp])
print(json.dumps([b - a for a, b in zip(ends, ends[1:])]))
"""


def step_times(policy: str, fused: bool, steps: int) -> list:
    """One fresh process's training-step times, in seconds."""
    code = STEP_TIMES.format(project=str(PROJECT), policy=policy, fused=fused, steps=steps)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"batch_norm.py: the {policy} run failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per side and precision")
    args = parser.parse_args()
    for policy in ("mixed_bfloat16", "float32"):
        times = {False: [], True: []}
        for _ in range(args.repeats):
            for fused in (False, True):
                times[fused] += step_times(policy, fused, args.steps)
        keras_ms, kx_ms = (1000 * statistics.median(times[side]) for side in (False, True))
        print(
            f"{policy:15s} Keras BatchNormalization {keras_ms:6.1f} ms/step, "
            f"kx FusedBatchNormalization {kx_ms:6.1f} ms/step: ratio {kx_ms / keras_ms:.2f}"
        )


if __name__ == "__main__":
    main()
