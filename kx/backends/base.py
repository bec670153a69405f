"""The interface every backend implements: build, fit, predict, export."""

import abc
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
from omegaconf import DictConfig

from kx import process
from kx.backends.checkpoint import Checkpoint
from kx.backends.cluster import Cluster
from kx.backends.monitor import EpochMonitor
from kx.data import Dataset
from kx.errors import KxError


class BackendError(KxError):
    """A backend cannot run here (e.g. its engine is not installed); the message says how to fix it."""


def data_parallel_steps(batch_size: int, samples: int, parts: int, what: str) -> int:
    """Steps per epoch when ``train.batch_size`` is a global batch split into ``parts`` equal shares
    (``what``: "hosts" or "replicas"); the last partial batch is dropped so every part steps alike."""
    steps = samples // batch_size
    if batch_size % parts or steps == 0:
        raise BackendError(
            f"train.batch_size={batch_size} does not split over {parts} {what}: it is the global batch, "
            f"so it must be a multiple of {parts} and at most the {samples} training samples."
        )
    return steps


class EpochSums(NamedTuple):
    """One epoch's totals, from which its metrics are averaged: a tuple, so that hosts can add
    theirs up as one array in this order."""

    loss: float  # the per-sample losses of the training samples, summed
    correct: float  # training samples predicted right
    seen: float  # training samples
    val_loss: float
    val_correct: float
    val_seen: float

    def metrics(self) -> Dict[str, float]:
        """The epoch's mean loss and accuracy on the training and on the validation samples."""
        return {
            "loss": self.loss / self.seen,
            "acc": self.correct / self.seen,
            "val_loss": self.val_loss / self.val_seen,
            "val_acc": self.val_correct / self.val_seen,
        }


def epochs_left(monitor: EpochMonitor, last: int) -> Iterator[int]:
    """The epochs a custom training loop runs: from after the last recorded one (a resumed run) to
    ``last``, each begun on ``monitor``; none once early stopping has stopped the run."""
    for epoch in range(monitor.epochs + 1, last + 1):
        if monitor.stop:
            return
        monitor.begin_epoch()
        yield epoch


class Backend(abc.ABC):
    """One training engine. kx calls, in order: ``prepare``, ``build``, ``fit``, ``predict``/``export``.

    On a multi-host ``cluster`` every host runs the same calls; ``fit`` trains data-parallel, each
    host on its share of every batch, and leaves the same weights on every host.
    """

    engines: Tuple[str, ...] = ()  # the backend names (``backend.name``) this class trains with
    multi_worker_engines: Tuple[str, ...] = ()  # engines this class can train across hosts
    averages_weights: bool = False  # validates and keeps a moving average of the weights (train.ema)

    def __init__(self, cfg: DictConfig, cluster: Optional[Cluster] = None) -> None:
        self.cfg = cfg
        self.name: str = cfg.name
        self.image_layout: str = str(cfg.image_layout)
        self.cluster = cluster or Cluster()
        if self.cluster.size > 1 and self.name not in self.multi_worker_engines:
            raise BackendError(
                f"backend={self.name} cannot train across {self.cluster.size} hosts; multi-worker "
                f"training (target.instance_count > 1) is supported by backend=tensorflow and backend=mxnet."
            )
        if cfg.get("num_gpus") is not None:
            process.visible_gpus(cfg.num_gpus)

    @abc.abstractmethod
    def prepare(self, seed: int, deterministic: bool) -> None:
        """Import the engine and seed every random generator it uses."""

    @abc.abstractmethod
    def build(self, model: DictConfig, input_shape: Tuple[int, ...], num_classes: int) -> None:
        """Build the network described by the model config."""

    @abc.abstractmethod
    def fit(self, data: Dataset, train: DictConfig, monitor: EpochMonitor, checkpoint: Checkpoint) -> None:
        """Train on ``data`` from epoch ``monitor.epochs + 1`` (0 unless resumed).

        After each epoch: report it to ``monitor``, keep the weights when it is the best so far,
        ``checkpoint.save`` the state; stop early when ``monitor.stop`` or ``monitor.interrupted``.
        At the end, restore the best epoch's weights (the exported model is the best epoch's).
        """

    def end_epoch(
        self, epoch: int, metrics: Dict[str, float], monitor: EpochMonitor, checkpoint: Checkpoint
    ) -> None:
        """After a whole epoch: report it to ``monitor``, keep the weights when it is the best so far,
        checkpoint the state."""
        if monitor.end_epoch(epoch, metrics):
            self.keep_best()
        checkpoint.save(self, monitor)

    @abc.abstractmethod
    def keep_best(self) -> None:
        """Keep a copy of the weights the epoch was validated with as the best epoch's, which ``fit``
        restores at the end."""

    @abc.abstractmethod
    def save_state(self, folder: Path) -> None:
        """Write everything a resumed run needs: weights, optimizer state, best weights."""

    @abc.abstractmethod
    def load_state(self, folder: Path) -> None:
        """Load what :meth:`save_state` wrote (after :meth:`build`)."""

    @abc.abstractmethod
    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities, shape (N, classes), for images in this backend's layout."""

    @abc.abstractmethod
    def export(self, model_dir: Path, name: str, version: int) -> List[Path]:
        """Write the model in this engine's serving format under ``model_dir``; return the paths."""

    @abc.abstractmethod
    def devices(self) -> List[str]:
        """The devices training runs on, e.g. ``["cpu"]`` or ``["gpu:0"]``."""

    @abc.abstractmethod
    def versions(self) -> Dict[str, str]:
        """Versions of the engine's packages, for tracking."""
