"""The observers train.py passes to kx.pipeline.run: what each does at a run's end (fakes, in process)."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any, List

import numpy as np
from omegaconf import OmegaConf

from kx.observer import RunEnd
from kx.stopping import RunStopped, TrainingInterrupted
from kx.sweep.trial import TrialObserver, TrialPruned
from kx.tracking.observer import TrackingObserver


class FakeRun:
    """The calls an MLflowRun gets, in order."""

    def __init__(self) -> None:
        self.calls: List[Any] = []
        self.failed = False
        self.run_id, self.uri, self.experiment_id = "r1", "sqlite:///x.db", "0"

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


def _end(stopped: bool, tmp_path: Path) -> RunEnd:
    monitor = SimpleNamespace(
        best=lambda: {"val_acc": 0.9}, final=lambda: {"val_acc": 0.8}, best_epoch=2, epochs=3
    )
    backend = SimpleNamespace(versions=lambda: {"keras": "3"})
    data = SimpleNamespace(x_val=np.zeros((4, 2)), raw_images=lambda x: x)
    return RunEnd(
        backend,
        monitor,
        data,
        [tmp_path / "metrics.json"],
        tmp_path / "model",
        stopped,
        None if stopped else 0.85,
    )


def _observer(run: FakeRun, logged: List[Path]) -> TrackingObserver:
    observer = TrackingObserver(
        [], (None, {}), lambda run, model_dir, example, name: logged.append(model_dir)
    )
    observer.run = run
    return observer


def test_a_finished_run_logs_results_and_the_model_then_ends(tmp_path):
    run, logged = FakeRun(), []
    _observer(run, logged).ended(_end(False, tmp_path))
    names = [name for name, _, _ in run.calls]
    assert names[-1] == "end" and ("log_metrics", ({"model_val_acc": 0.85},), {}) in run.calls
    assert logged == [tmp_path / "model"]


def test_a_stopped_run_keeps_its_epochs_and_ends_killed_when_the_stop_is_raised(tmp_path):
    run, logged = FakeRun(), []
    observer = _observer(run, logged)
    observer.ended(_end(True, tmp_path))
    assert "end" not in [name for name, _, _ in run.calls] and logged == [tmp_path / "model"]
    assert not any(args == ({"model_val_acc": 0.85},) for _, args, _ in run.calls)
    observer.failed(stopped=True)
    assert run.calls[-1] == ("end", ("KILLED",), {})


def test_a_pruned_trial_and_a_signal_are_stops_not_failures():
    assert issubclass(TrialPruned, RunStopped) and issubclass(TrainingInterrupted, RunStopped)


def test_outside_a_sweep_the_trial_observer_does_nothing(tmp_path):
    observer = TrialObserver(environ={})
    observer.started(
        OmegaConf.create({"train": {"objective": {"metric": "val_acc", "direction": "max"}}}), tmp_path, True
    )
    observer.epoch(1, {"val_acc": 0.5})
    observer.exported(tmp_path, stopped=False)
    assert observer.sinks == []


def test_an_automatic_batch_size_is_tagged_with_the_size_the_run_trains_with(
    tmp_path, compose_cfg, mlflow_store
):
    from mlflow.tracking import MlflowClient

    from kx.data.loading import load_dataset

    cfg = compose_cfg("dataset=digits", f"tracking.uri={mlflow_store}")
    assert cfg.train.batch_size is None
    observer = TrackingObserver([], (None, {}), lambda *args: None)
    observer.started(cfg, tmp_path, is_chief=True)
    data = load_dataset(cfg.dataset, "channels_last", 0)
    observer.prepared(data, SimpleNamespace(devices=lambda: ["cpu:0"]))
    observer.failed(stopped=False)
    (run,) = MlflowClient(mlflow_store).search_runs([observer.run.experiment_id])
    assert run.data.params["train.batch_size"] == "None"  # as configured, like a SageMaker twin's
    assert run.data.tags["kx.batch_size"] == "32"
