"""One training job, top to bottom: config -> data -> backend (train, evaluate, export) -> observers."""

import json
import logging
import os
import platform
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from kx import __version__
from kx.backends import Backend, Cluster, EpochMonitor, bn_momentum, create_backend
from kx.backends.checkpoint import Checkpoint
from kx.config import batch_size, objective
from kx.config.keys import flatten
from kx.data import Dataset
from kx.data.loading import load_dataset
from kx.errors import KxError
from kx.observer import RunEnd, RunObserver
from kx.quiet import native_stderr_to_log, quiet_console
from kx.reporting import plots
from kx.reporting.chance import chance_warning
from kx.run_config import validate
from kx.stopping import RunStopped, interrupted, stop_on_signals

log = logging.getLogger("kx")


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


def run(cfg: DictConfig, out_dir: Path, observers: Sequence[RunObserver] = ()) -> float:
    """Train, evaluate and export the configured experiment; return the best monitored value.

    Everything lands in ``out_dir`` first (config, metrics, plots, model), then goes to the
    ``observers`` (MLflow, a sweep), so a tracking failure never loses results. In a multi-host job
    (``SM_HOSTS``) every host trains; only the first exports the model and tracks the run.
    """
    quiet_console()
    validate(cfg)
    if cfg.target.name != "local":
        raise KxError(
            f"target={cfg.target.name} runs through launch.py: "
            f"`python launch.py target={cfg.target.name} ...`; train.py trains here (target=local)."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("kx %s on Python %s, output folder %s", __version__, platform.python_version(), out_dir)
    files = [write_config(cfg, out_dir / "config.yaml")]
    cluster = Cluster.from_env(os.environ)
    if cluster.size > 1:
        log.info("multi-worker training: %s, hosts %s", cluster.describe(), ", ".join(cluster.hosts))
    checkpoint = Checkpoint(cfg.train.checkpoint_dir, trained_with(cfg))
    checkpoint.check_settings()  # before tracking reopens the checkpoint's MLflow run
    started: List[RunObserver] = []
    try:
        for observer in observers:
            started.append(observer)
            observer.started(cfg, out_dir, cluster.is_chief)
        return _train(cfg, out_dir, files, list(observers), cluster, checkpoint)
    except BaseException as err:
        for observer in started:
            observer.failed(isinstance(err, (RunStopped, KeyboardInterrupt)))
        raise


class Prepared(NamedTuple):
    """A run ready to train: the config with its batch size resolved, the built backend, the data."""

    cfg: DictConfig
    backend: Backend
    data: Dataset


def prepare(
    cfg: DictConfig, cluster: Optional[Cluster] = None, observers: Sequence[RunObserver] = ()
) -> Prepared:
    """The start of every training run (train.py's and the backend benchmark's): prepare the backend,
    load the data, resolve the batch size, build the model."""
    backend = create_backend(cfg.backend, cluster)
    with native_stderr_to_log():  # the engine's C++ start-up lines, on import
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
    for observer in observers:
        observer.prepared(data, backend)
    cfg = _merged(cfg, {"train": batch_size.resolve(cfg.train, len(data.y_train))})  # from here on
    model = bn_momentum.resolve(cfg.model, len(data.y_train), cfg.train.batch_size, cfg.train.epochs)
    backend.build(model, data.input_shape, data.num_classes)
    return Prepared(cfg, backend, data)


def _train(
    cfg: DictConfig,
    out_dir: Path,
    files: List[Path],
    observers: List[RunObserver],
    cluster: Cluster,
    checkpoint: Checkpoint,
) -> float:
    cfg, backend, data = prepare(cfg, cluster, observers)
    stopping = cfg.train.early_stopping
    monitor = EpochMonitor(
        objective=objective(cfg),
        patience=stopping.patience if stopping.enabled else None,
        min_delta=stopping.min_delta,
        sinks=[observer.epoch for observer in observers],
        quiet=not cluster.is_chief,
        epochs=cfg.train.epochs,
    )
    checkpoint.restore(backend, monitor)
    with stop_on_signals(monitor) as signals:
        backend.fit(data, cfg.train, monitor, checkpoint)
    if monitor.interrupted:
        if not monitor.epochs:
            raise interrupted(monitor, checkpoint, signals, "no epoch was completed")
        _end(cfg, out_dir, files, observers, backend, monitor, cluster, data, stopped=True)
        raise interrupted(
            monitor,
            checkpoint,
            signals,
            f"metrics.json, training_curves.png and the best "
            f"epoch's ({monitor.best_epoch}) model are in {out_dir}",
        )
    _end(cfg, out_dir, files, observers, backend, monitor, cluster, data, stopped=False)
    return monitor.best()[monitor.monitor]


def _end(
    cfg: DictConfig,
    out_dir: Path,
    files: List[Path],
    observers: List[RunObserver],
    backend: Any,
    monitor: EpochMonitor,
    cluster: Cluster,
    data: Dataset,
    stopped: bool,
) -> None:
    """The one ending of a finished or a stopped run: the best epoch's values, metrics.json, the model,
    the plots, then the observers. A stopped run keeps its completed epochs; a finished one also
    judges the exported model on the validation images."""
    monitor.report_best()  # first: a tuner that stopped the job reads its objective from these lines
    predicted, accuracy, extra = None, None, {"stopped_after_epoch": monitor.epochs}
    if not stopped:
        predicted = backend.predict(data.x_val).argmax(axis=1)
        accuracy = float(np.mean(predicted == data.y_val))
        warning = chance_warning(
            accuracy, data.y_val, len(data.y_train), cfg.train.batch_size, monitor.epochs
        )
        if warning:
            log.warning(warning)
        extra = {"model_val_acc": accuracy}
    files = files + [write_metrics(monitor, extra, out_dir / "metrics.json")]
    model_dir = _export(cfg, out_dir, backend, cluster, data, observers)
    for observer in observers:
        observer.exported(model_dir, stopped)  # a sweep's trial: complete, whatever stops it from here on
    files += _plots(monitor, data, predicted, out_dir)  # after the export: a report never costs the model
    end = RunEnd(backend, monitor, data, files, model_dir, stopped, accuracy)
    for observer in observers:
        observer.ended(end)


def trained_with(cfg: DictConfig) -> Dict[str, str]:
    """The settings a checkpoint must share with the run that resumes it: the engine, model, data and
    training settings, less where the data and checkpoints are (a restarted job mounts them anew)."""
    settings = {
        "backend.name": cfg.backend.name,
        **flatten(_plain(cfg.model), "model"),
        **flatten(_plain(cfg.dataset), "dataset"),
        **flatten(_plain(cfg.train), "train"),
    }
    for moved in ("train.checkpoint_dir", "dataset.channel_dir"):
        settings.pop(moved, None)
    return settings


def _merged(cfg: DictConfig, changes: Dict[str, Any]) -> DictConfig:
    """``cfg`` with ``changes`` (the caller's ``cfg`` stays as composed: config.yaml, the checkpoint's
    settings and the MLflow params record what the user asked for)."""
    merged = OmegaConf.merge(cfg, changes)
    assert isinstance(merged, DictConfig)
    return merged


def _plain(node: DictConfig) -> Any:
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True)


def _export(
    cfg: DictConfig,
    out_dir: Path,
    backend: Any,
    cluster: Cluster,
    data: Dataset,
    observers: List[RunObserver],
) -> Path:
    """Export the model (the best epoch's) and its contract on the first host; return the model folder."""
    model_dir = Path(cfg.export.model_dir) if cfg.export.model_dir else out_dir / "model"
    if cluster.is_chief:
        model_dir.mkdir(parents=True, exist_ok=True)
        exported = backend.export(model_dir, cfg.export.name, cfg.export.version)
        for observer in observers:
            exported += observer.export_files(model_dir, list(exported), data, backend)
        log.info("model exported to %s", ", ".join(str(p) for p in exported))
    else:
        log.info("the model is exported by %s, the first host", cluster.hosts[0])
    return model_dir


def _plots(monitor: EpochMonitor, data: Any, predicted: Optional[np.ndarray], out_dir: Path) -> List[Path]:
    """The training curves and (with predictions) the confusion matrix; a plot that fails is a
    warning, not a failed run."""
    try:
        drawn = [plots.training_curves(monitor.history, monitor.best_epoch, out_dir / "training_curves.png")]
        if predicted is not None:
            drawn.append(
                plots.confusion_matrix(
                    data.y_val, predicted, data.class_names, out_dir / "confusion_matrix.png"
                )
            )
        return drawn
    except Exception as err:  # noqa: BLE001  (matplotlib raises many unrelated types)
        log.warning(
            "kx: warning: the plots were not drawn (%s: %s); the model and metrics are saved",
            type(err).__name__,
            err,
        )
        return []
