"""One training job, top to bottom: config -> data -> backend (train, evaluate, export) -> tracking."""

import json
import logging
import os
import platform
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

from kx import __version__
from kx.backends import Cluster, EpochMonitor, create_backend
from kx.backends.checkpoint import Checkpoint
from kx.config import objective, validate
from kx.data import load_dataset
from kx.errors import KxError
from kx.reporting import plots
from kx.sweep.trial import TrialPruned, epoch_sinks
from kx.tracking import MLflowRun, start_training_run
from kx.tracking.dataset_input import log_dataset
from kx.tracking.links import announce

log = logging.getLogger("kx")


class TrainingInterrupted(KxError):
    """SIGTERM stopped training; the last completed epoch is in the checkpoint."""


def write_config(cfg: DictConfig, path: Path) -> Path:
    """The fully resolved config, reusable as-is: ``python train.py --config-dir ...``."""
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def write_metrics(monitor: EpochMonitor, extra: Dict[str, Any], path: Path) -> Path:
    """Per-epoch history, the best and the final epoch's metrics, and the epoch times."""
    summary = {
        "monitor": monitor.monitor,
        "epochs": monitor.epochs,
        "best_epoch": monitor.best_epoch,
        "best": monitor.best(),
        "final": monitor.final(),
        "history": monitor.history,
        "epoch_seconds": monitor.epoch_seconds,
        **extra,
    }
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def run(cfg: DictConfig, out_dir: Path, overrides: List[str] = ()) -> float:
    """Train, evaluate and export the configured experiment; return the best monitored value.

    Everything lands in ``out_dir`` first (config, metrics, plots, model), then in MLflow, so a
    tracking failure never loses results. In a multi-host job (``SM_HOSTS``) every host trains;
    only the first exports the model and tracks the run.
    """
    validate(cfg)
    if cfg.target.name != "local":
        raise KxError(f"target={cfg.target.name} runs through launch.py: "
                      f"`python launch.py target={cfg.target.name} ...`; train.py trains here (target=local).")  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("kx %s on Python %s, output folder %s", __version__, platform.python_version(), out_dir)
    files = [write_config(cfg, out_dir / "config.yaml")]
    cluster = Cluster.from_env(os.environ)
    if cluster.size > 1:
        log.info("multi-worker training: %s, hosts %s", cluster.describe(), ", ".join(cluster.hosts))
    tracking = start_training_run(cfg, list(overrides), out_dir) if cluster.is_chief else None

    try:
        return _train(cfg, out_dir, files, tracking, cluster)
    except BaseException as err:
        if tracking:
            tracking.end("KILLED" if isinstance(err, (TrainingInterrupted, TrialPruned)) else "FAILED")
        raise


def _train(
    cfg: DictConfig, out_dir: Path, files: List[Path], tracking: Optional[MLflowRun], cluster: Cluster
) -> float:
    backend = create_backend(cfg.backend, cluster)
    backend.prepare(cfg.train.seed, cfg.train.deterministic)
    data = load_dataset(cfg.dataset, backend.image_layout, cfg.train.seed)
    log.info(
        "%s: %d training / %d validation images of shape %s, %d classes; backend %s on %s",
        data.name,
        len(data.y_train),
        len(data.y_val),
        data.input_shape,
        data.num_classes,
        backend.name,
        ", ".join(backend.devices()),
    )
    if tracking:
        log_dataset(tracking, data)
    backend.build(cfg.model, data.input_shape, data.num_classes)

    stopping = cfg.train.early_stopping
    goal = objective(cfg)
    monitor = EpochMonitor(
        objective=goal,
        patience=stopping.patience if stopping.enabled else None,
        min_delta=stopping.min_delta,
        sinks=([lambda epoch, metrics: tracking.log_metrics(metrics, step=epoch)] if tracking else [])
        + epoch_sinks(goal),  # a sweep's trial: the pruner sees every epoch
    )
    checkpoint = Checkpoint(cfg.train.checkpoint_dir)
    checkpoint.restore(backend, monitor)
    monitor.stop_on_sigterm()
    backend.fit(data, cfg.train, monitor, checkpoint)
    if monitor.interrupted:
        raise TrainingInterrupted(
            f"Training stopped by SIGTERM after epoch {monitor.epochs}; "
            + (
                f"rerun with train.checkpoint_dir={checkpoint.folder} to resume."
                if checkpoint.folder
                else "set train.checkpoint_dir to make runs resumable."
            )
        )
    monitor.report_best()

    predicted = backend.predict(data.x_val).argmax(axis=1)
    model_accuracy = float(np.mean(predicted == data.y_val))
    files += [
        write_metrics(monitor, {"model_val_acc": model_accuracy}, out_dir / "metrics.json"),
        plots.training_curves(monitor.history, monitor.best_epoch, out_dir / "training_curves.png"),
        plots.confusion_matrix(data.y_val, predicted, data.class_names, out_dir / "confusion_matrix.png"),
    ]
    model_dir = Path(cfg.export.model_dir) if cfg.export.model_dir else out_dir / "model"
    if cluster.is_chief:
        model_dir.mkdir(parents=True, exist_ok=True)
        exported = backend.export(model_dir, cfg.export.name, cfg.export.version)
        log.info("model exported to %s", ", ".join(str(p) for p in exported))
    else:
        log.info("the model is exported by %s, the first host", cluster.hosts[0])

    if tracking:
        tracking.set_tags({f"kx.version.{pkg}": version for pkg, version in backend.versions().items()})
        tracking.log_metrics({f"best_{k}": v for k, v in monitor.best().items()}, step=monitor.best_epoch)
        tracking.log_metrics({f"final_{k}": v for k, v in monitor.final().items()}, step=monitor.epochs)
        tracking.log_metrics({"best_epoch": monitor.best_epoch, "model_val_acc": model_accuracy})
        tracking.log_artifacts(files)
        tracking.log_artifacts([model_dir])
        tracking.end()
        announce(tracking)
    return monitor.best()[monitor.monitor]
