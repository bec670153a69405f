"""kx's overhead: the same model on the same data, plain Keras vs ``train.py`` (tracking included).

Both run as fresh processes in this one benchmark run, alternately (plain, kx, plain, kx, ...) so
that drift in the machine's speed hits both alike; the figure is the ratio of the median per-epoch
times over all runs (each run's first epoch, which includes graph tracing, is left out).
Goal: <= 1.05.

    python benchmarks/overhead.py [--epochs 4] [--samples 12000] [--repeats 2]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

PLAIN_KERAS = """
import json, os, sys, time
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
sys.path.insert(0, {project!r})
from kx.data import synthetic

epochs, samples = {epochs}, {samples}
data = synthetic.generate(samples, samples // 5, [28, 28], 1, 10, 0.35, seed=42).dataset()
keras.utils.set_random_seed(42)
model = keras.Sequential([
    keras.Input((28, 28, 1)),
    keras.layers.Conv2D(64, 3, padding="same"), keras.layers.BatchNormalization(),
    keras.layers.Activation("relu"), keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(128, 3, padding="valid"), keras.layers.BatchNormalization(),
    keras.layers.Activation("relu"), keras.layers.MaxPooling2D(2),
    keras.layers.Flatten(), keras.layers.Dense(512, activation="relu"), keras.layers.Dropout(0.3),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
              "sparse_categorical_crossentropy", metrics=["accuracy"])

class Timer(keras.callbacks.Callback):
    times = []
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)

model.fit(data.x_train, data.y_train, batch_size=128, epochs=epochs,
          validation_data=(data.x_val, data.y_val), verbose=0, callbacks=[Timer()])
print(json.dumps(Timer.times))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=12000)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternating")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error(f"--epochs {args.epochs}: give 2 or more (each run's first epoch is left out)")

    script = PLAIN_KERAS.format(project=str(PROJECT), epochs=args.epochs, samples=args.samples)
    plain, kx = [], []
    for _ in range(args.repeats):
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
        plain += json.loads(out.strip().splitlines()[-1])[1:]
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [
                    sys.executable,
                    str(PROJECT / "train.py"),
                    "dataset=synthetic",
                    "hydra.run.dir=run",
                    f"dataset.train_samples={args.samples}",
                    f"dataset.validation_samples={args.samples // 5}",
                    f"train.epochs={args.epochs}",
                    "train.early_stopping.enabled=false",
                ],
                cwd=tmp,
                check=True,
                capture_output=True,
            )
            kx += json.loads((Path(tmp) / "run" / "metrics.json").read_text())["epoch_seconds"][1:]
    ratio = statistics.median(kx) / statistics.median(plain)
    print(f"plain Keras  per-epoch seconds: {' '.join(f'{t:.2f}' for t in plain)}")
    print(
        f"kx train.py  per-epoch seconds: {' '.join(f'{t:.2f}' for t in kx)}  (tracking on, deterministic ops)"
    )
    print(f"overhead ratio (median epoch, first epochs excluded): {ratio:.3f}  (goal <= 1.05)")


if __name__ == "__main__":
    main()
