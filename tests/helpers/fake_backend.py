"""A backend that trains instantly, for in-process tests of the pipeline around an engine.

Its "model" is the epoch it was trained to: each epoch reports the next of a scripted list of
validation accuracies, and it predicts the validation labels exactly. An epoch may also send this
process a signal (as Ctrl-C or a stopped job would), which the pipeline's own handlers receive.
"""

import contextlib
import json
import signal
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple
from unittest import mock

import numpy as np
from omegaconf import DictConfig

from kx import pipeline
from kx.backends.base import Backend, epochs_left
from kx.backends.checkpoint import Checkpoint
from kx.backends.monitor import EpochMonitor
from kx.data import Dataset


class FakeBackend(Backend):
    """Epoch ``n`` reports ``val_accs[n - 1]``; ``signal_at`` sends ``(epoch, signal)`` during that
    epoch, before it completes."""

    val_accs: List[float] = [0.5, 0.7, 0.8]
    signal_at: Optional[Tuple[int, int]] = None
    built: List["FakeBackend"] = []  # every instance the pipeline built, newest last

    def prepare(self, seed: int, deterministic: bool) -> None:
        self.weights = self.best_weights = 0  # the epoch the model was trained to
        self.labels: Dict[bytes, int] = {}
        type(self).built.append(self)

    def build(self, model: DictConfig, input_shape: Tuple[int, ...], num_classes: int) -> None:
        self.num_classes = num_classes

    def fit(self, data: Dataset, train: DictConfig, monitor: EpochMonitor, checkpoint: Checkpoint) -> None:
        self.labels = {x.tobytes(): int(y) for x, y in zip(data.x_val, data.y_val)}
        for epoch in epochs_left(monitor, train.epochs):
            if self.signal_at and self.signal_at[0] == epoch:
                signal.raise_signal(self.signal_at[1])
            if monitor.interrupted:
                break
            self.weights = epoch
            acc = self.val_accs[epoch - 1]
            self.end_epoch(
                epoch, {"loss": 1 - acc, "acc": acc, "val_loss": 1 - acc, "val_acc": acc}, monitor, checkpoint
            )
        self.weights = self.best_weights

    def keep_best(self) -> None:
        self.best_weights = self.weights

    def save_state(self, folder: Path) -> None:
        (folder / "fake.json").write_text(json.dumps([self.weights, self.best_weights]))

    def load_state(self, folder: Path) -> None:
        self.weights, self.best_weights = json.loads((folder / "fake.json").read_text())

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return np.eye(self.num_classes)[[self.labels.get(image.tobytes(), 0) for image in x]]

    def export(self, model_dir: Path, name: str, version: int) -> List[Path]:
        path = model_dir / f"{name}-{version}.json"
        path.write_text(json.dumps({"trained_to_epoch": self.weights}))
        return [path]

    def devices(self) -> List[str]:
        return ["cpu"]

    def versions(self) -> Dict[str, str]:
        return {"fake": "1"}


@contextlib.contextmanager
def fake_backend(val_accs: List[float], signal_at: Optional[Tuple[int, int]] = None) -> Iterator[type]:
    """While the block runs, the pipeline trains on :class:`FakeBackend` with this script, whatever
    engine the config names (its checks and layout stay the named engine's)."""
    script = {"val_accs": val_accs, "signal_at": signal_at, "built": []}
    engine = type("ScriptedFakeBackend", (FakeBackend,), script)
    with mock.patch.object(pipeline, "create_backend", lambda cfg, cluster=None: engine(cfg, cluster)):
        yield engine
