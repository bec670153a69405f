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
from kx.backends import Cluster, EpochMonitor, batch_norm, create_backend
from kx.backends.checkpoint import Checkpoint
from kx.config import batch_size, objective, validate
from kx.config.keys import flatten
from kx.data import Dataset, load_dataset
from kx.errors import KxError
from kx.quiet import native_stderr_to_log, quiet_console
from kx.reporting import plots
from kx.reporting.chance import chance_warning
from kx.serving import contract
from kx.stopping import TrainingInterrupted, interrupted, stop_on_signals
from kx.sweep.trial import TrialPruned, epoch_sinks, mark_exported
from kx.tracking import MLflowRun, start_training_run
from kx.tracking.dataset_input import log_dataset
from kx.tracking.links import announce

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


def log_mlflow_model(tracking: MLflowRun, model_dir: Path, data: Dataset, register_as: Optional[str]) -> None:
    """The exported model as the run's MLflow Model ``model`` (kx/serving/mlflow_model.py); should
    MLflow fail at that, the export's files as the run's ``model/`` artifacts."""
    from kx.serving.mlflow_model import log_model

    if not tracking.failed and not log_model(
        tracking, model_dir, data.raw_images(data.x_val[:2]), register_as
    ):
        tracking.log_artifacts([model_dir])


def run(cfg: DictConfig, out_dir: Path, overrides: List[str] = ()) -> float:
    """Train, evaluate and export the configured experiment; return the best monitored value.

    Everything lands in ``out_dir`` first (config, metrics, plots, model), then in MLflow, so a
    tracking failure never loses results. In a multi-host job (``SM_HOSTS``) every host trains;
    only the first exports the model and tracks the run.
    """
    quiet_console()
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
    checkpoint = Checkpoint(cfg.train.checkpoint_dir, trained_with(cfg))
    checkpoint.check_settings()  # before tracking reopens the checkpoint's MLflow run
    tracking = start_training_run(cfg, list(overrides), out_dir) if cluster.is_chief else None

    try:
        return _train(cfg, out_dir, files, tracking, cluster, checkpoint)
    except BaseException as err:
        if tracking:
            stopped = (TrainingInterrupted, KeyboardInterrupt, TrialPruned)
            tracking.end("KILLED" if isinstance(err, stopped) else "FAILED")
        raise


def _train(
    cfg: DictConfig,
    out_dir: Path,
    files: List[Path],
    tracking: Optional[MLflowRun],
    cluster: Cluster,
    checkpoint: Checkpoint,
) -> float:
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
    if tracking:
        log_dataset(tracking, data)
        tracking.set_tags({"kx.devices": ", ".join(backend.devices())})
    train = batch_size.resolve(cfg.train, len(data.y_train))
    model = batch_norm.resolve(cfg.model, len(data.y_train), train.batch_size, train.epochs)
    backend.build(model, data.input_shape, data.num_classes)

    stopping = cfg.train.early_stopping
    goal = objective(cfg)
    monitor = EpochMonitor(
        objective=goal,
        patience=stopping.patience if stopping.enabled else None,
        min_delta=stopping.min_delta,
        sinks=([lambda epoch, metrics: tracking.log_metrics(metrics, step=epoch)] if tracking else [])
        + epoch_sinks(goal),  # a sweep's trial: the pruner sees every epoch
        quiet=not cluster.is_chief,
        epochs=cfg.train.epochs,
    )
    checkpoint.restore(backend, monitor)
    with stop_on_signals(monitor) as signals:
        backend.fit(data, train, monitor, checkpoint)
    if monitor.interrupted:
        kept = _keep_completed(cfg, out_dir, files, tracking, backend, monitor, cluster, data)
        raise interrupted(monitor, checkpoint, signals, kept)
    monitor.report_best()

    predicted = backend.predict(data.x_val).argmax(axis=1)
    model_accuracy = float(np.mean(predicted == data.y_val))
    warning = chance_warning(model_accuracy, data.y_val, len(data.y_train), train.batch_size, monitor.epochs)
    if warning:
        log.warning(warning)
    files.append(write_metrics(monitor, {"model_val_acc": model_accuracy}, out_dir / "metrics.json"))
    model_dir = _export(cfg, out_dir, backend, cluster, data)
    mark_exported(str(model_dir))  # a sweep's trial: complete, whatever stops it from here on
    files += _plots(monitor, data, predicted, out_dir)  # after the export: a report never costs the model
    if tracking:
        _track_results(tracking, backend, monitor, files)
        tracking.log_metrics({"model_val_acc": model_accuracy})
        log_mlflow_model(tracking, model_dir, data, cfg.tracking.register_as)
        tracking.end()
        announce(tracking)
    return monitor.best()[monitor.monitor]


def trained_with(cfg: DictConfig) -> Dict[str, str]:
    """The settings a checkpoint must share with the run that resumes it: the engine, model, data and
    training settings, less where the data and checkpoints are (a restarted job mounts them anew)."""
    settings = {"backend.name": cfg.backend.name, **flatten(_plain(cfg.model), "model"),
                **flatten(_plain(cfg.dataset), "dataset"), **flatten(_plain(cfg.train), "train")}  # fmt: skip
    for moved in ("train.checkpoint_dir", "dataset.channel_dir"):
        settings.pop(moved, None)
    return settings


def _plain(node: DictConfig) -> Any:
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True)


def _export(cfg: DictConfig, out_dir: Path, backend: Any, cluster: Cluster, data: Dataset) -> Path:
    """Export the model (the best epoch's) and its contract on the first host; return the model folder."""
    model_dir = Path(cfg.export.model_dir) if cfg.export.model_dir else out_dir / "model"
    if cluster.is_chief:
        model_dir.mkdir(parents=True, exist_ok=True)
        exported = backend.export(model_dir, cfg.export.name, cfg.export.version)
        exported.append(contract.write(cfg, data, backend, model_dir, exported))
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
            drawn.append(plots.confusion_matrix(data.y_val, predicted, data.class_names,
                                                out_dir / "confusion_matrix.png"))  # fmt: skip
        return drawn
    except Exception as err:  # noqa: BLE001  (matplotlib raises many unrelated types)
        log.warning("kx: warning: the plots were not drawn (%s: %s); the model and metrics are saved",
                    type(err).__name__, err)  # fmt: skip
        return []


def _track_results(tracking: MLflowRun, backend: Any, monitor: EpochMonitor, files: List[Path]) -> None:
    """The best and final epochs' metrics, the engine's versions and the run's files, to MLflow."""
    tracking.set_tags({f"kx.version.{pkg}": version for pkg, version in backend.versions().items()})
    tracking.log_metrics({f"best_{k}": v for k, v in monitor.best().items()}, step=monitor.best_epoch)
    tracking.log_metrics({f"final_{k}": v for k, v in monitor.final().items()}, step=monitor.epochs)
    tracking.log_metrics({"best_epoch": monitor.best_epoch})
    tracking.log_artifacts(files)


def _keep_completed(
    cfg: DictConfig,
    out_dir: Path,
    files: List[Path],
    tracking: Optional[MLflowRun],
    backend: Any,
    monitor: EpochMonitor,
    cluster: Cluster,
    data: Dataset,
) -> str:
    """After a stop: keep the completed epochs' metrics and curves and the best epoch's model; say what."""
    if not monitor.epochs:
        return "no epoch was completed"
    monitor.report_best()  # first: a tuner that stopped the job reads its objective from these lines
    files = files + [
        write_metrics(monitor, {"stopped_after_epoch": monitor.epochs}, out_dir / "metrics.json")
    ]
    model_dir = _export(cfg, out_dir, backend, cluster, data)
    files += _plots(monitor, None, None, out_dir)
    if tracking:
        _track_results(tracking, backend, monitor, files)
        log_mlflow_model(tracking, model_dir, data, cfg.tracking.register_as)
    return f"metrics.json, training_curves.png and the best epoch's ({monitor.best_epoch}) model are in {out_dir}"
