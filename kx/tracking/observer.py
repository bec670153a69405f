"""A training run's MLflow run, as an observer of :func:`kx.pipeline.run`."""

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from omegaconf import DictConfig

from kx.config.batch_size import auto_batch_size
from kx.observer import RunEnd, RunObserver
from kx.tracking import MLflowRun, start_training_run
from kx.tracking.dataset_input import log_dataset
from kx.tracking.links import announce

# kx.serving.mlflow_model.log_model: (run, model folder, example input, registered name) -> URI or None
LogModel = Callable[[MLflowRun, Path, Any, Optional[str]], Optional[str]]


class TrackingObserver(RunObserver):
    """Opens the run on the first host, logs each epoch, the results, the files and the model (as an
    MLflow Model by ``log_model``, or as plain files should MLflow fail at that), and ends the run."""

    def __init__(
        self, overrides: List[str], identity: Tuple[Optional[str], Dict[str, str]], log_model: LogModel
    ) -> None:
        self.overrides = overrides
        self.identity = identity  # a sweep's trial's run name and tags
        self.log_model = log_model
        self.run: Optional[MLflowRun] = None
        self.register_as: Optional[str] = None
        self.automatic_batch = False

    def started(self, cfg: DictConfig, out_dir: Path, is_chief: bool) -> None:
        self.register_as = cfg.tracking.register_as
        self.automatic_batch = cfg.train.batch_size is None
        if is_chief:
            self.run = start_training_run(cfg, self.overrides, out_dir, self.identity)

    def prepared(self, data: Any, backend: Any) -> None:
        if self.run:
            log_dataset(self.run, data)
            if self.automatic_batch:  # the param stays null, as a SageMaker twin's does; the size used:
                self.run.set_tags({"kx.batch_size": str(auto_batch_size(len(data.y_train)))})
            self.run.set_tags({"kx.devices": ", ".join(backend.devices())})

    def epoch(self, epoch: int, metrics: Dict[str, float]) -> None:
        if self.run:
            self.run.log_metrics(metrics, step=epoch)

    def ended(self, end: RunEnd) -> None:
        run = self.run
        if not run:
            return
        monitor = end.monitor
        run.set_tags({f"kx.version.{pkg}": version for pkg, version in end.backend.versions().items()})
        run.log_metrics({f"best_{k}": v for k, v in monitor.best().items()}, step=monitor.best_epoch)
        run.log_metrics({f"final_{k}": v for k, v in monitor.final().items()}, step=monitor.epochs)
        run.log_metrics({"best_epoch": monitor.best_epoch})
        run.log_artifacts(end.files)
        if end.model_accuracy is not None:
            run.log_metrics({"model_val_acc": end.model_accuracy})
        example = end.data.raw_images(end.data.x_val[:2])
        if not run.failed and not self.log_model(run, end.model_dir, example, self.register_as):
            run.log_artifacts([end.model_dir])
        if not end.stopped:  # a stopped run ends KILLED when the stop is raised (failed)
            run.end()
            announce(run)

    def failed(self, stopped: bool) -> None:
        if self.run:
            self.run.end("KILLED" if stopped else "FAILED")
