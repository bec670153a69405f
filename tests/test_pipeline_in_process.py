"""kx.pipeline.run in this process on a backend that trains instantly (tests/helpers/fake_backend.py):
the one ending of a finished, an early-stopped and a signalled run, and a resume that continues the
same MLflow run."""

import json
import signal
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from kx.observer import RunEnd, RunObserver
from kx.pipeline import run
from kx.stopping import TrainingInterrupted
from tests.helpers.fake_backend import FakeBackend, fake_backend


class Recorder(RunObserver):
    """A fake tracker: the hooks the pipeline called, in order, with what a tracker would keep."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, Any]] = []

    def started(self, cfg, out_dir, is_chief) -> None:
        self.calls.append(("started", is_chief))

    def prepared(self, data, backend) -> None:
        self.calls.append(("prepared", isinstance(backend, FakeBackend)))

    def epoch(self, epoch, metrics) -> None:
        self.calls.append(("epoch", epoch))

    def export_files(self, model_dir, exported, data, backend) -> List[Path]:
        self.calls.append(("export_files", [p.name for p in exported]))
        return []

    def exported(self, model_dir, stopped) -> None:
        self.calls.append(("exported", stopped))

    def ended(self, end: RunEnd) -> None:
        self.calls.append(("ended", (end.stopped, end.model_accuracy, end.monitor.best_epoch)))

    def failed(self, stopped) -> None:
        self.calls.append(("failed", stopped))


@pytest.fixture
def fake_cfg(compose_cfg, tmp_path, monkeypatch):
    """A digits MLP config (trained by the fake backend), tracking off."""
    for name, value in {"MLFLOW_CONFIGURE_LOGGING": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}.items():
        monkeypatch.setenv(name, value)  # what the pipeline sets for its process, undone afterwards

    def _cfg(*overrides: str):
        return compose_cfg(
            "backend=torch", "model=mlp", "dataset=digits", "tracking.enabled=false", *overrides
        )

    return _cfg


def test_a_finished_run_writes_its_files_then_tells_each_observer_once(fake_cfg, tmp_path):
    recorder = Recorder()
    with fake_backend([0.5, 0.7, 0.8]):
        best = run(fake_cfg("train.epochs=3"), tmp_path / "run", [recorder])
    assert best == 0.8
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["history"]["val_acc"] == [0.5, 0.7, 0.8] and metrics["model_val_acc"] == 1.0
    assert (tmp_path / "run" / "config.yaml").is_file() and (
        tmp_path / "run" / "training_curves.png"
    ).is_file()
    assert recorder.calls == [
        ("started", True),
        ("prepared", True),
        ("epoch", 1),
        ("epoch", 2),
        ("epoch", 3),
        ("export_files", ["model-1.json"]),
        ("exported", False),
        ("ended", (False, 1.0, 3)),
    ]


def test_early_stopping_ends_the_run_and_exports_the_best_epochs_model(fake_cfg, tmp_path):
    recorder = Recorder()
    cfg = fake_cfg("train.epochs=6", "train.early_stopping.patience=2")
    with fake_backend([0.5, 0.9, 0.6, 0.6, 0.95, 0.99]):
        assert run(cfg, tmp_path / "run", [recorder]) == 0.9
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == 4 and metrics["best_epoch"] == 2
    assert json.loads((tmp_path / "run" / "model" / "model-1.json").read_text()) == {"trained_to_epoch": 2}
    assert recorder.calls[-1] == ("ended", (False, 1.0, 2))


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 2), (signal.SIGINT, 130)])
def test_a_signal_keeps_the_completed_epochs_and_ends_in_one_line(fake_cfg, tmp_path, sig, code):
    if signal.getsignal(sig) is signal.SIG_IGN:
        pytest.skip(f"{sig.name} is ignored in this process (the pipeline leaves it ignored)")
    recorder, before = Recorder(), signal.getsignal(sig)
    checkpoints = tmp_path / "ckpt"
    cfg = fake_cfg("train.epochs=3", f"train.checkpoint_dir={checkpoints}")
    with fake_backend([0.5, 0.7, 0.8], signal_at=(2, sig)), pytest.raises(TrainingInterrupted) as stopped:
        run(cfg, tmp_path / "run", [recorder])
    assert stopped.value.exit_code == code
    assert str(stopped.value) == (
        f"Training stopped by {sig.name} after epoch 1; metrics.json, training_curves.png and the best "
        f"epoch's (1) model are in {tmp_path / 'run'}; rerun with train.checkpoint_dir={checkpoints} to resume."
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["stopped_after_epoch"] == 1 and "model_val_acc" not in metrics
    assert recorder.calls[-3:] == [("exported", True), ("ended", (True, None, 1)), ("failed", True)]
    assert signal.getsignal(sig) is before  # the process's own handling is back


def test_a_stopped_run_resumes_from_its_checkpoint_into_the_same_mlflow_run(fake_cfg, tmp_path, mlflow_store):
    from mlflow.tracking import MlflowClient

    from kx.tracking.observer import TrackingObserver

    cfg = fake_cfg(
        "train.epochs=3", f"train.checkpoint_dir={tmp_path / 'ckpt'}", f"tracking.uri={mlflow_store}"
    )
    cfg.tracking.enabled = True
    tracker = lambda: TrackingObserver(["train.epochs=3"], (None, {}), lambda *args: None)  # noqa: E731
    with fake_backend([0.5, 0.7, 0.8], signal_at=(2, signal.SIGTERM)), pytest.raises(TrainingInterrupted):
        run(cfg, tmp_path / "first", [tracker()])
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment).experiment_id
    (stopped,) = client.search_runs([experiment])
    assert stopped.info.status == "KILLED"

    with fake_backend([0.5, 0.7, 0.8]) as engine:
        assert run(cfg, tmp_path / "second", [tracker()]) == 0.8
    assert engine.built[-1].weights == 3
    (resumed,) = client.search_runs([experiment])
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"
    history = client.get_metric_history(resumed.info.run_id, "val_acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.7), (3, 0.8)]
    assert resumed.data.tags["kx.output_dir"] == str(tmp_path / "second")
