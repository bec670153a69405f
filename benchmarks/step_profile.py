"""Where a training step of the reference CNN goes (TensorFlow), on one fixed batch, in one process.

The model is built through kx's Backend (kx's layers and settings: fused batch norm, the first
block's folded into its convolution (one layer here), the precision ``backend.precision`` resolves
to, threads, layout), then timed on one fixed batch of Fashion-MNIST:

    fit step     what a step adds to Keras's ``fit`` loop on kx's input pipeline (callbacks, metrics,
                 the input iterator: what training runs), from two fits of different lengths, so
                 that fit's set-up per call is left out, as it is from an epoch of hundreds of steps
    train step   one compiled step alone: forward, backward and the optimizer's update
    grads only   forward and backward, no update (so optimizer = train step - grads only)
    forward      the forward pass in training mode
    <layer>      forward and backward of each layer on its own input (conv, batch norm, pooling, dense)
    input        kx's tf.data pipeline alone, per batch

Keras's per-step overhead is fit step - train step. To mimic a CPU without bfloat16 on one that
has it, cap oneDNN and force float32:

    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/step_profile.py backend.precision=float32 [overrides]
"""

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

PROJECT = Path(__file__).resolve().parents[1]
REPEATS, ROUNDS = 3, 3  # calls per timing, timings per figure (the median is reported)


def timed(call: Callable[[], Any]) -> float:
    """Median seconds per call of ``call`` (after one warm-up call, which traces)."""
    call()
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(REPEATS):
            call()  # on the CPU a call returns once its ops have run
        rounds.append((time.perf_counter() - start) / REPEATS)
    return statistics.median(rounds)


def main() -> None:
    sys.path.insert(0, str(PROJECT))
    from kx.backends import EpochMonitor
    from kx.backends.checkpoint import Checkpoint
    from kx.config.batch_size import LARGE
    from kx.cpu import probe
    from kx.pipeline import prepare
    from kx.run_config import compose

    # the batch a large training set gets, not the automatic one of this short slice
    overrides = ["train.early_stopping.enabled=false", "train.epochs=1", "dataset.limit=2560"]
    cfg, backend, data = prepare(compose([*overrides, f"train.batch_size={LARGE}", *sys.argv[1:]]))
    backend.fit(
        data, cfg.train, EpochMonitor(patience=None), Checkpoint(None)
    )  # compiles, builds the optimizer
    import keras
    import tensorflow as tf

    batch = cfg.train.batch_size
    model, x, y = backend.model, tf.constant(data.x_train[:batch]), tf.constant(data.y_train[:batch])
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    variables = model.trainable_variables

    def grads() -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, variables)

    def train_step() -> Any:
        model.optimizer.apply(grads(), variables)
        return model.optimizer.iterations

    figures = {
        "fit step": fit_step(backend, data.x_train[:batch], data.y_train[:batch]),
        "train step": timed(tf.function(train_step)),
        "grads only": timed(tf.function(grads)),
        "forward": timed(tf.function(lambda: model(x, training=True))),
    }
    inputs = x
    for layer in model.layers:
        if layer.trainable_variables or "pool" in layer.name:
            figures[f"  {layer.name}"] = timed(
                tf.function(lambda layer=layer, inputs=inputs: layer_step(tf, layer, inputs))
            )
        inputs = layer(inputs, training=True)
    pipeline = backend._tf_data(data.x_train, data.y_train, batch, shuffle=True)
    figures["input"] = timed(lambda: [b for b in pipeline]) / len(pipeline)
    figures["optimizer (train step - grads only)"] = figures["train step"] - figures["grads only"]
    figures["Keras per step (fit step - train step)"] = figures["fit step"] - figures["train step"]
    print(f"CPU: {probe().describe()}; load average {os.getloadavg()[0]:.2f}")
    print(
        f"precision {backend.precision}, layout {backend.image_layout}, batch {batch}, overrides {sys.argv[1:]}"
    )
    for name, seconds in figures.items():
        share = seconds / figures["fit step"]
        print(f"{name:<40} {seconds * 1000:8.1f} ms  {share:6.0%} of a fit step")


def fit_step(backend: Any, x: Any, y: Any) -> float:
    """Seconds a step adds to ``model.fit`` on kx's input pipeline of the batch ``x, y`` repeated:
    fits of one and of four calls of the model's steps per call, the difference per step."""
    import numpy as np

    model = backend.model
    per_call = int(getattr(model, "steps_per_execution", 1) or 1)
    short, long = per_call, 4 * per_call
    seconds = {}
    for steps in (short, long):
        xs, ys = np.concatenate([x] * steps), np.concatenate([y] * steps)
        batches = backend._tf_data(xs, ys, len(y), shuffle=False)
        seconds[steps] = timed(lambda batches=batches: model.fit(batches, epochs=1, verbose=0))
    return (seconds[long] - seconds[short]) / (long - short)


def layer_step(tf: Any, layer: Any, inputs: Any) -> Any:
    """Forward and backward of ``layer`` alone: gradients for its input and its weights."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        total = tf.reduce_sum(tf.cast(layer(inputs, training=True), "float32"))
    return tape.gradient(total, [inputs, *layer.trainable_variables])


if __name__ == "__main__":
    main()
