"""Data-parallel Keras training across hosts with TensorFlow's ``MultiWorkerMirroredStrategy``.

Keras 3's ``Model.fit`` does not run under this strategy (its per-replica metric reduction fails
on scalar values across workers), so kx trains there with a short loop of its own:

- every epoch all hosts draw the same permutation of the training set (seeded by the epoch) and
  each host takes its shard of every batch; ``train.batch_size`` is the global batch size;
- gradients are summed across hosts by the optimizer; loss, accuracy and a "stop" flag are summed
  every step, so all hosts see the same numbers and stop on the same step after a SIGTERM;
- after every epoch the BatchNorm statistics (the only per-host state) are averaged, so every host
  holds the same model; the validation set is split across hosts and its sums reduced.
"""

import logging
from typing import Any

import numpy as np
from omegaconf import DictConfig

from kx.backends import keras_optim
from kx.backends.base import EpochSums, data_parallel_steps, epochs_left
from kx.backends.checkpoint import Checkpoint
from kx.backends.monitor import EpochMonitor
from kx.data import Dataset

log = logging.getLogger("kx")


def fit(
    backend: Any, data: Dataset, train: DictConfig, monitor: EpochMonitor, checkpoint: Checkpoint
) -> None:
    """Train ``backend.model`` under ``backend.strategy``; the contract of :meth:`Backend.fit`."""
    import tensorflow as tf

    keras, model, strategy, cluster = backend.keras, backend.model, backend.strategy, backend.cluster
    global_batch, replicas = train.batch_size, strategy.num_replicas_in_sync
    steps = data_parallel_steps(global_batch, len(data.y_train), replicas, "replicas")
    log.info(
        "data-parallel: %d steps per epoch, each a global batch of %d split over %d replicas on %d hosts",
        steps,
        global_batch,
        replicas,
        cluster.size,
    )
    if not model.optimizer.built:
        with backend.scope():
            model.optimizer.build(model.trainable_variables)
    images, labels = tf.constant(data.x_train), tf.constant(data.y_train.astype(np.int64))

    def replica_step(x: Any, y: Any, stop: Any) -> Any:
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            losses = keras.losses.sparse_categorical_crossentropy(y, probs)
            loss = tf.reduce_sum(losses) / global_batch  # the optimizer sums gradients across replicas
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, axis=1), y), tf.float32))
        return tf.stack([tf.reduce_sum(losses), correct, stop])

    @tf.function
    def train_step(iterator: Any, stop: Any) -> Any:
        return strategy.reduce("SUM", strategy.run(replica_step, args=(*next(iterator), stop)), axis=None)

    local_replicas = len(strategy.extended.worker_devices)

    @tf.function
    def sum_across_hosts(values: Any) -> Any:
        return strategy.reduce("SUM", strategy.run(lambda v: v / local_replicas, args=(values,)), axis=None)

    statistics = [v for v in model.non_trainable_variables if str(v.dtype).startswith("float")]

    @tf.function
    def averaged_statistics() -> Any:
        def average() -> Any:
            values = [tf.identity(v.value) for v in statistics]
            return tf.distribute.get_replica_context().all_reduce("MEAN", values)

        return strategy.run(average)

    for epoch in epochs_left(monitor, train.epochs):
        order = np.random.default_rng([backend.seed, epoch]).permutation(len(data.y_train))[
            : steps * global_batch
        ]

        def shard(context: Any, order: np.ndarray = order) -> Any:
            batches = tf.data.Dataset.from_tensor_slices(order).shard(
                context.num_input_pipelines, context.input_pipeline_id
            )
            batches = batches.batch(context.get_per_replica_batch_size(global_batch), drop_remainder=True)
            return batches.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))

        iterator = iter(strategy.distribute_datasets_from_function(shard))
        totals = np.zeros(3)
        for _ in range(steps):
            totals += train_step(iterator, tf.constant(float(monitor.interrupted))).numpy()
            if totals[2] > 0:  # some host was told to stop: all stop here, the last checkpoint stands
                monitor.interrupted = True
                return
        if statistics:  # BatchNorm's moving statistics, the only weights each host updates alone
            for variable, value in zip(
                statistics, strategy.experimental_local_results(averaged_statistics())[0]
            ):
                variable.assign(value)
        with keras_optim.averaged(model):  # what the epoch is validated with (train.ema)
            val_sums = _evaluate(backend, data, train.batch_size, sum_across_hosts)
        sums = EpochSums(totals[0], totals[1], steps * global_batch, *val_sums)
        backend.end_epoch(epoch, sums.metrics(), monitor, checkpoint)


def predict(backend: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities from this host's copy of the model (no cross-host traffic)."""
    import tensorflow as tf

    if not hasattr(backend, "_forward"):
        backend._forward = tf.function(lambda batch: backend.model(batch, training=False))
    batches = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
    return np.concatenate([backend._forward(tf.constant(b)).numpy() for b in batches])


def _evaluate(backend: Any, data: Dataset, batch_size: int, sum_across_hosts: Any) -> Any:
    """The validation set's summed loss, correct predictions and samples; each host scores its share
    and the sums are reduced."""
    import tensorflow as tf

    cluster = backend.cluster
    x, y = data.x_val[cluster.rank :: cluster.size], data.y_val[cluster.rank :: cluster.size]
    probs = predict(backend, x, batch_size) if len(y) else np.zeros((0, 1))
    picked = probs[np.arange(len(y)), y] if len(y) else np.zeros(0)
    local = [-np.log(np.clip(picked, 1e-7, 1.0)).sum(), (probs.argmax(axis=1) == y).sum(), len(y)]
    return tuple(sum_across_hosts(tf.constant(local, tf.float64)).numpy())
