"""Apache MXNet 1.9 with Gluon: the model config built as a hybridized ``HybridSequential``.

Keras 3 has no MXNet backend, so this module translates the same model config into Gluon layers
(Glorot-uniform weights and zero biases, as Keras initialises them) and trains with a Gluon
``Trainer``. Images arrive channels-first (N, C, H, W), as MXNet's convolutions expect.

MXNet is imported through :func:`kx._compat.import_mxnet` (numpy aliases MXNet 1.9.1 still reads).
"""

import json
import logging
import math
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from omegaconf import DictConfig

from kx import process
from kx._compat import import_mxnet
from kx.backends import bn_momentum, devices, optim, precision
from kx.backends.base import Backend, BackendError, EpochSums, data_parallel_steps, epochs_left
from kx.backends.checkpoint import Checkpoint
from kx.backends.monitor import EpochMonitor
from kx.data import Dataset
from kx.models import builder

log = logging.getLogger("kx")
METRICS_KEY = 1_000_000  # the kvstore key of the epoch's summed metrics; parameters use 0, 1, ...


@dataclass(frozen=True)
class _Plan:
    """How a Gluon training run's epochs go: ``share`` of every global ``batch_size`` per host."""

    hosts: int
    rank: int
    share: int
    steps: int
    parts: int  # this host's devices
    batch_size: int


class GluonSchedule:
    """MXNet's ``lr_scheduler`` protocol over :func:`kx.backends.optim.rate` (a plain class, so that the
    Trainer's saved states, which pickle it, load back)."""

    def __init__(self, spec: optim.OptimizerSpec) -> None:
        self.spec = spec
        self.base_lr = spec.peak  # MXNet's optimizer sets this attribute

    def __call__(self, num_update: int) -> float:
        return optim.rate(self.spec, max(num_update - 1, 0))  # MXNet counts updates from 1


class GluonBackend(Backend):
    """Trains the model config as a Gluon network; exports symbol + params + shapes for serving.

    Across hosts it trains through MXNet's ``dist_sync`` parameter servers, which SageMaker's MXNet
    container starts (with the ``DMLC_*`` environment) when the job sets
    ``sagemaker_parameter_server_enabled``: each host takes its share of every global batch, the
    servers sum the gradients, and every host applies the same update. kx pushes and pulls the
    gradients itself rather than through the Trainer's kvstore, whose combined push-pull can
    answer with a stale value under load (seen here as diverging runs).

    On several devices (``self.ctxs``: every GPU, or ``backend.cpu_devices`` CPU contexts) each
    batch is split over them with ``split_and_load``, and a local kvstore sums the gradients the
    same way; BatchNorm's running statistics are averaged over the devices after every epoch.
    """

    engines = ("mxnet",)
    multi_worker_engines = ("mxnet",)
    kv: Any = None
    local_kv: Any = None  # sums the gradients of this host's devices when there are several

    def prepare(self, seed: int, deterministic: bool) -> None:
        if self.image_layout != "channels_first":
            raise BackendError(
                f"backend.image_layout={self.image_layout} is not supported by backend=mxnet: "
                "MXNet's convolutions take channels_first (N, C, H, W) images."
            )
        self._check_parameter_servers()  # before MXNet's slow import
        process.mxnet_threads(self.cfg.get("threads"))
        if deterministic:
            process.mxnet_deterministic()
        self.mx = import_mxnet()
        self.ctxs = devices.mxnet_contexts(self.mx, self.cfg.cpu_devices)
        self.ctx = self.ctxs[0]  # where kx evaluates, predicts and exports
        if len(self.ctxs) > 1 and self.cluster.size == 1:
            self.local_kv = self.mx.kv.create("device" if self.mx.context.num_gpus() else "local")
        precision.resolve(
            str(self.cfg.get("precision", "float32")), self.name, on_gpu=self.ctx != self.mx.cpu()
        )
        if self.cluster.size > 1:
            self.kv = self._connect()
        self.mx.random.seed(seed)
        self.rng = np.random.default_rng(seed)
        np.random.seed(seed)
        random.seed(seed)

    def _check_parameter_servers(self) -> None:
        """Across hosts, SageMaker's MXNet container must have started the parameter servers."""
        if self.cluster.size > 1 and os.environ.get("DMLC_ROLE") != "worker":
            raise BackendError(
                f"backend=mxnet on {self.cluster.size} hosts trains through MXNet parameter servers, "
                "and DMLC_ROLE=worker is not set: the job needs the hyperparameter "
                "sagemaker_parameter_server_enabled=true, which launch.py adds when "
                "target.instance_count > 1."
            )

    def _connect(self) -> Any:
        """The ``dist_sync`` kvstore shared by every host (blocks until all hosts have joined)."""
        kv = self.mx.kv.create("dist_sync")
        if kv.num_workers != self.cluster.size:
            raise BackendError(
                f"MXNet reports {kv.num_workers} workers (DMLC_NUM_WORKER) for "
                f"{self.cluster.size} hosts (SM_HOSTS); they must agree."
            )
        return kv

    def build(self, model: DictConfig, input_shape: Tuple[int, ...], num_classes: int) -> None:
        if "builder" in model:
            net = builder.build(model, "gluon_builder", input_shape, num_classes, self._wrong_block)
        else:
            net = self._sequential(model, num_classes)
        net.initialize(self.mx.init.Xavier(rnd_type="uniform", factor_type="avg", magnitude=3), ctx=self.ctxs)
        if str(self.cfg.get("jit", "auto")) != "off":  # backend.jit: a cached graph with static memory
            net.hybridize(static_alloc=True)
        out = net(self.mx.nd.zeros((1, *input_shape), ctx=self.ctx))  # resolves deferred shapes
        if out.shape != (1, num_classes):
            raise builder.ModelError(
                f"model={model.name} gives outputs of shape {out.shape} for one image; "
                f"expected (1, {num_classes}) logits."
            )
        self.net = net
        self.input_shape = input_shape
        self.best: Dict[str, Any] = {}
        self.resumed_from: Optional[Path] = None

    def _wrong_block(self, net: Any) -> Optional[str]:
        if not isinstance(net, self.mx.gluon.HybridBlock):
            return f"returned {type(net).__name__}, not a Gluon HybridBlock (backend=mxnet hybridizes and exports it)"
        return None

    def _sequential(self, model: DictConfig, num_classes: int) -> Any:
        """The conv blocks and dense layers of a ``model`` config as a ``HybridSequential``."""
        nn = self.mx.gluon.nn
        net = nn.HybridSequential()
        for conv in model.conv_layers:
            padding = conv.kernel_size // 2 if str(conv.padding) == "same" else 0
            net.add(nn.Conv2D(conv.filters, conv.kernel_size, padding=padding))
            if model.batch_norm:
                net.add(
                    nn.BatchNorm(axis=1, momentum=bn_momentum.momentum(model), epsilon=1e-3)
                )  # Keras's epsilon
            net.add(nn.Activation("relu"), nn.MaxPool2D(model.pool_size))
        net.add(nn.Flatten())
        for _ in range(model.dense_layers):
            net.add(nn.Dense(model.dense_units, activation="relu"), nn.Dropout(model.dropout))
        net.add(nn.Dense(num_classes))  # logits; the softmax is in the loss and in the export
        return net

    def _trainer(self, train: DictConfig, steps_per_epoch: int) -> Any:
        """A Gluon ``Trainer`` for kx's optimizer and schedule (:mod:`kx.backends.optim`)."""
        spec = optim.spec(train, steps_per_epoch, self.averages_weights)
        params: Dict[str, Any] = {"learning_rate": spec.peak, "lr_scheduler": GluonSchedule(spec)}
        name = spec.kind
        if spec.kind == "sgd":
            name = "nag" if spec.nesterov else "sgd"
            params["momentum"] = spec.momentum
        return self.mx.gluon.Trainer(self.net.collect_params(), name, params, kvstore=None)

    def _join_hosts(self, metrics: int) -> None:
        """Give every parameter (and the metrics) a key on the servers; start from the first host's weights."""
        params = list(self.net.collect_params().values())
        values = [self._plain(p.data(self.ctx)) for p in params]
        self.kv.init(list(range(len(params))), values)
        self.kv.init(METRICS_KEY, self.mx.nd.zeros(metrics, dtype="float64"))
        for key, (param, value) in enumerate(zip(params, values)):
            self.kv.pull(key, out=value)
            param.set_data(value)

    def _plain(self, array: Any) -> Any:
        """A copy in MXNet's default layout: the kvstore refuses arrays in oneDNN's internal layouts."""
        return self.mx.nd.array(array.asnumpy(), ctx=array.context, dtype=array.dtype)

    def _sum_across_hosts(self, key: int, value: Any) -> Any:
        """The sum of ``value`` over every host: a push, which the servers add up, then a pull."""
        self.kv.push(key, value, priority=-key)
        self.kv.pull(key, out=value, priority=-key)
        return value

    def _announce(self, samples: int, share: int, hosts: int) -> None:
        """Log how each batch splits over this host's devices; on one host an epoch's shuffle is cut
        to a multiple of the devices, so that every batch (the last too) splits evenly."""
        left_out = samples % len(self.ctxs) if hosts == 1 else 0
        note = f"; {left_out} training samples of each epoch's shuffle left out, so that every batch splits evenly"
        devices.announce(self.devices(), share, samples // hosts, note if left_out else "")

    def _init_local_kv(self) -> None:
        """Give every trained parameter a key in the kvstore that sums this host's gradients."""
        for key, param in enumerate(self.net.collect_params().values()):
            if param.grad_req != "null":
                self.local_kv.init(key, param.list_grad()[0])

    def _forward_backward(self, batch: Any, label: Any, loss_fn: Any) -> Tuple[Any, Any]:
        """Forward and backward passes, each device on its share of the batch; return the summed
        loss and number of correct predictions (on ``self.ctx``)."""
        mx, split = self.mx, self.mx.gluon.utils.split_and_load
        shares = list(zip(split(batch, self.ctxs), split(label, self.ctxs)))
        with mx.autograd.record():
            outs = [self.net(data) for data, _ in shares]
            losses = [loss_fn(out, target) for out, (_, target) in zip(outs, shares)]
        mx.autograd.backward(losses)
        loss_sum = mx.nd.add_n(*[loss.sum().as_in_context(self.ctx) for loss in losses])
        correct = mx.nd.add_n(
            *[
                (out.argmax(axis=1) == target).sum().as_in_context(self.ctx)
                for out, (_, target) in zip(outs, shares)
            ]
        )
        return loss_sum, correct

    def _sum_gradients(self) -> None:
        """Sum each gradient over this host's devices and across hosts; every copy gets the sum."""
        kv = self.kv or self.local_kv
        for key, param in enumerate(self.net.collect_params().values()):
            if param.grad_req != "null":
                grads = param.list_grad()
                kv.push(key, grads, priority=-key)
                kv.pull(key, out=grads, priority=-key)

    def _average_statistics(self) -> None:
        """Average BatchNorm's running statistics, the only weights each device and host updates alone."""
        for key, param in enumerate(self.net.collect_params().values()):
            if param.grad_req == "null" and len(self.ctxs) > 1:
                copies = [value.as_in_context(self.ctx) for value in param.list_data()]
                param.set_data(self.mx.nd.add_n(*copies) / len(copies))
            if param.grad_req == "null" and self.kv is not None:
                param.set_data(
                    self._sum_across_hosts(key, self._plain(param.data(self.ctx))) / self.kv.num_workers
                )

    def _batches(self, x: np.ndarray, y: np.ndarray, batch_size: int):
        nd = self.mx.nd
        for start in range(0, len(x), batch_size):
            end = start + batch_size
            yield nd.array(x[start:end], ctx=self.ctx), nd.array(y[start:end], ctx=self.ctx)

    def _evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> Tuple[float, float]:
        """Summed loss and number of correct predictions over ``x``."""
        loss_fn = self.mx.gluon.loss.SoftmaxCrossEntropyLoss()
        loss_sum, correct = self.mx.nd.zeros(1, ctx=self.ctx), self.mx.nd.zeros(1, ctx=self.ctx)
        for data, label in self._batches(x, y, batch_size):
            out = self.net(data)
            loss_sum += loss_fn(out, label).sum()
            correct += (out.argmax(axis=1) == label).sum()
        return loss_sum.asscalar(), correct.asscalar()

    def fit(self, data: Dataset, train: DictConfig, monitor: EpochMonitor, checkpoint: Checkpoint) -> None:
        plan = self._plan(data, train)
        x_val, y_val = data.x_val[plan.rank :: plan.hosts], data.y_val[plan.rank :: plan.hosts]
        for epoch in epochs_left(monitor, train.epochs):
            x, y = self._epoch_data(data, plan)
            trained = self._train_epoch(x, y, plan, monitor, f"epoch {epoch}/{train.epochs}")
            if trained is None:
                break  # interrupted: a partial epoch is not recorded, the last checkpoint stands
            if plan.hosts > 1 or plan.parts > 1:
                self._average_statistics()
            sums = EpochSums(*trained, len(y), *self._evaluate(x_val, y_val, plan.share), len(y_val))
            self.end_epoch(epoch, self._sum_epoch(sums, plan, monitor).metrics(), monitor, checkpoint)
            if monitor.interrupted:
                break
        for name, value in self.best.items():
            self.net.collect_params()[name].set_data(value)

    def keep_best(self) -> None:
        self.best = {name: p.data(self.ctx).copy() for name, p in self.net.collect_params().items()}

    def _plan(self, data: Dataset, train: DictConfig) -> "_Plan":
        """How every epoch runs (hosts, devices, batch share, steps); make the trainer, join the hosts."""
        hosts, rank = (self.kv.num_workers, self.kv.rank) if self.kv is not None else (1, 0)
        parts, samples = len(self.ctxs), len(data.y_train)
        self._announce(samples, train.batch_size // hosts, hosts)
        steps = math.ceil(devices.even_length(samples, parts) / train.batch_size)
        if hosts > 1:
            steps = data_parallel_steps(train.batch_size, samples, hosts, "hosts")
        self.trainer = self._trainer(train, steps)
        if self.resumed_from is not None:
            self.trainer.load_states(str(self.resumed_from / "trainer.states"))
        if hosts > 1:
            log.info(
                "data-parallel: %d steps per epoch, each a global batch of %d split over %d hosts",
                steps,
                train.batch_size,
                hosts,
            )
            self._join_hosts(metrics=len(EpochSums._fields) + 1)  # and the stop flag
        elif self.local_kv is not None:
            self._init_local_kv()
        return _Plan(hosts, rank, train.batch_size // hosts, steps, parts, train.batch_size)

    def _epoch_data(self, data: Dataset, plan: "_Plan") -> Tuple[np.ndarray, np.ndarray]:
        """This host's training samples for the next epoch, shuffled."""
        order = self.rng.permutation(len(data.y_train))
        if plan.hosts > 1:  # every host draws the same order and takes its share of each global batch
            order = order[: plan.steps * plan.batch_size].reshape(plan.steps, plan.hosts, plan.share)
            order = order[:, plan.rank].ravel()
        else:
            order = order[: devices.even_length(len(order), plan.parts)]
        return data.x_train[order], data.y_train[order]

    def _train_epoch(
        self, x: np.ndarray, y: np.ndarray, plan: "_Plan", monitor: EpochMonitor, label: str
    ) -> Optional[Tuple[float, float]]:
        """One pass over ``x``: the summed loss and correct predictions, or None when interrupted
        (on one host; across hosts a signal takes effect at the end of the epoch)."""
        loss_fn, show_progress = self.mx.gluon.loss.SoftmaxCrossEntropyLoss(), sys.stdout.isatty()
        loss_sum, correct = self.mx.nd.zeros(1, ctx=self.ctx), self.mx.nd.zeros(1, ctx=self.ctx)
        for step, (batch, labels) in enumerate(self._batches(x, y, plan.share), start=1):
            batch_loss, batch_correct = self._forward_backward(batch, labels, loss_fn)
            if plan.hosts > 1 or self.local_kv is not None:
                self._sum_gradients()
            self.trainer.step(batch.shape[0] * plan.hosts)
            loss_sum += batch_loss
            correct += batch_correct
            if monitor.interrupted and plan.hosts == 1:
                break
            if show_progress:
                print(f"\r{label} batch {step}", end="", flush=True)
        if show_progress:
            print("\r", end="")
        if monitor.interrupted and plan.hosts == 1:
            return None
        return loss_sum.asscalar(), correct.asscalar()

    def _sum_epoch(self, sums: EpochSums, plan: "_Plan", monitor: EpochMonitor) -> EpochSums:
        """This host's sums added up across hosts, together with their stop flags."""
        if plan.hosts == 1:
            return sums
        totals = self._sum_across_hosts(
            METRICS_KEY, self.mx.nd.array([*sums, monitor.interrupted], dtype="float64")
        )
        *summed, interrupted = totals.asnumpy().tolist()
        monitor.interrupted = interrupted > 0
        return EpochSums(*summed)

    def save_state(self, folder: Path) -> None:
        self.net.save_parameters(str(folder / "last.params"))
        self.trainer.save_states(str(folder / "trainer.states"))
        if self.best:
            self.mx.nd.save(str(folder / "best.params"), self.best)
        (folder / "shuffle_rng.json").write_text(json.dumps(self.rng.bit_generator.state))

    def load_state(self, folder: Path) -> None:
        self.net.load_parameters(str(folder / "last.params"), ctx=self.ctxs)
        if (folder / "best.params").is_file():
            self.best = self.mx.nd.load(str(folder / "best.params"))
        self.rng.bit_generator.state = json.loads((folder / "shuffle_rng.json").read_text())
        self.resumed_from = folder  # the optimizer state is loaded once fit() creates the trainer

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        nd = self.mx.nd
        batches = (x[i : i + batch_size] for i in range(0, len(x), batch_size))
        return np.concatenate([nd.softmax(self.net(nd.array(b, ctx=self.ctx))).asnumpy() for b in batches])

    def export(self, model_dir: Path, name: str, version: int) -> List[Path]:
        """``<name>-symbol.json``, ``-0000.params`` and ``-shapes.json``: SageMaker's MXNet layout."""
        nn = self.mx.gluon.nn
        served = nn.HybridSequential()
        served.add(self.net, nn.HybridLambda(lambda F, x: F.softmax(x)))
        served.hybridize()
        served(self.mx.nd.zeros((1, *self.input_shape), ctx=self.ctx))
        prefix = model_dir / name
        served.export(str(prefix), epoch=0)
        shapes = model_dir / f"{name}-shapes.json"
        shapes.write_text(json.dumps([{"name": "data", "shape": [1, *self.input_shape]}]))
        return [model_dir / f"{name}-symbol.json", model_dir / f"{name}-0000.params", shapes]

    def devices(self) -> List[str]:
        return [str(ctx) for ctx in self.ctxs]

    def versions(self) -> Dict[str, str]:
        return {"mxnet": self.mx.__version__}
