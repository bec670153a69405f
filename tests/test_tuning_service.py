"""SageMaker tuning as the service runs it: what the service adds to every trial (its reserved
hyperparameter, one checkpoint URI for all trials, SIGTERM for early stopping, trial descriptions in
its own shape), through the real training toolkit and the rehearsal that plays the service's side."""

import datetime
import json
import re
import subprocess
import sys

import pytest

from kx.backends.checkpoint import Checkpoint, CheckpointMismatch
from kx.errors import KxError
from kx.sagemaker import job_request, rehearsal, script_mode
from kx.sagemaker.job_tracking import job_config
from kx.sagemaker.tuning_request import translate
from kx.sagemaker.tuning_results import TunedJob, base_overrides, tuned_job
from tests.conftest import PROJECT_DIR, train
from tests.helpers.container import toolkit_argv
from tests.helpers.moto import BUCKET, launch
from tests.helpers.sweeps import mlflow_client

QUICK = ["sweep=quick", "dataset=digits", "model=mlp"]
# Values a sweep file may fix or list, in the override grammar a local trial gets them in.
SWEEP_VALUES = [
    "null",
    "true",
    "'true'",
    "1e-3",
    "'1e-3'",
    "0.001",
    "1.0e+2",
    "-7",
    "'64'",
    "adam",
    "'two words'",
    "[a,b]",
    "[1,2.5]",
    "{a:1,b:'c d'}",
    "''",
    "inf",
]


def test_reserved_hyperparameters_are_the_services_not_the_scripts():
    hps = {
        "backend": "tensorflow",
        "model": "mlp",
        "model.dropout": "0.25",
        "_tuning_objective_metric": "best_val_acc",
        "sagemaker_program": "train.py",
        "model_dir": "s3://b/m",
    }
    cfg = job_config(hps, sweep="quick")  # not None: the trial's config composes as train.py's in the job
    assert (cfg.model.name, cfg.model.dropout, cfg.sweep.name) == ("mlp", 0.25, "quick")
    tuning = {"TrainingJobDefinition": {"StaticHyperParameters": hps}}
    assert not any("_tuning_objective_metric" in o for o in base_overrides(tuning))  # best_trial.yaml's


def test_swept_and_fixed_values_reach_the_trial_as_a_local_trial_gets_them(sweep_cfg, tmp_path):
    """The tuning job's categorical and static values, through the real toolkit, to train.py's overrides
    (``null`` once arrived as ``''``, ``"true"`` as a bool, ``"1e-3"`` as a float, lists as Python's repr)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parse = OverridesParser.create().parse_overrides
    hps = {}
    for i, value in enumerate(SWEEP_VALUES):
        listed = value != "null"  # Hydra's choice() takes no null
        params = {
            "model.dense_units": f"choice(64,{value})" if listed else "choice(64,128)",
            "model.dropout": value,
        }
        spec = translate(sweep_cfg(params))
        hps[f"static{i}"] = spec.static["model.dropout"]
        if listed:
            (hps[f"categorical{i}"],) = [v for v in spec.ranges["model.dense_units"]["values"] if v != "64"]
    received = script_mode.parse_hyperparameters(toolkit_argv(tmp_path, hps))
    for i, value in enumerate(SWEEP_VALUES):
        (local,) = parse([f"k={value}"])  # what a local trial of the same sweep file gets
        for key in (k for k in (f"categorical{i}", f"static{i}") if k in hps):
            (got,) = parse([f"k={script_mode.decode_value(received[key])}"])
            assert got.value() == local.value(), (key, value)
            assert script_mode.job_value(hps[key]) == local.value()  # as the results side reads it back


@pytest.fixture
def sweep_cfg(compose_cfg):
    def _cfg(params=None, *overrides):
        cfg = compose_cfg("target=sagemaker", "target.region=eu-west-1", "sweep=quick", *overrides)
        if params is not None:
            cfg.sweep.params = params
        return cfg

    return _cfg


@pytest.mark.parametrize(
    "params, overrides, message",
    [
        (
            {"train.batch_size": "int(interval(32, 1024))"},
            ["target.instance_count=2"],
            "sweep.params.train.batch_size='int(interval(32, 1024))': with target.instance_count=2 each batch",
        ),
        (
            {"train.batch_size": "choice(64, 100, 129)"},
            ["target.instance_count=2"],
            "the batch must be a multiple of 2, and 129 is not",
        ),
        (
            None,
            ["target.instance_count=3"],
            "train.batch_size=null (automatic: one of 256, 128, 64, 32, 16): with "
            "target.instance_count=3 the batch must be a multiple of 3, and 256, 128, 64, 32, 16 is not",
        ),
        (
            None,
            ["target.instance_count=3", "train.batch_size=256"],
            "train.batch_size=256: with target.instance_count=3",
        ),
        (
            {"train.epochs": "int(interval(2, 9))", "model.dropout": "interval(0.1, 0.5)"},
            ["sweep.sampler=random", "sweep.pruner=hyperband"],
            "Hyperband gives each trial its epochs itself, up to train.epochs",
        ),
    ],
)
def test_ranges_the_jobs_hosts_or_hyperband_cannot_run_are_refused(sweep_cfg, params, overrides, message):
    with pytest.raises(KxError) as err:
        translate(sweep_cfg(params, *overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_both_tuners_sample_the_same_space_with_the_same_seed(sweep_cfg):
    from kx.sweep.plan import plan

    spec = translate(sweep_cfg())
    assert spec.seed == 42 == plan(sweep_cfg(), []).seed  # train.seed when sweep.seed is unset
    assert {r["scaling"] for r in spec.ranges.values() if "scaling" in r} == {"Logarithmic", "Linear"}
    hyperband = translate(sweep_cfg(None, "sweep.sampler=random", "sweep.pruner=hyperband", "train.epochs=9"))
    assert hyperband.max_resource == 9


def test_trials_checkpoint_under_their_job_and_host_and_only_spot_tuning_syncs_them(
    sweep_cfg, compose_cfg, tmp_path
):
    env = {"SM_TRAINING_ENV": "{}", "TRAINING_JOB_NAME": "kx-tune-003-ab12cd34", "SM_CURRENT_HOST": "algo-2"}
    assert (
        script_mode.checkpoint_folder("/opt/ml/checkpoints", env)
        == "/opt/ml/checkpoints/kx-tune-003-ab12cd34/algo-2"
    )
    argv = ["--train.checkpoint_dir", "/opt/ml/checkpoints", "--dataset", "digits"]
    overrides = script_mode.hydra_argv(argv, env, lambda o: compose_cfg(*o))
    assert "train.checkpoint_dir=/opt/ml/checkpoints/kx-tune-003-ab12cd34/algo-2" in overrides
    from kx.run_config import compose

    def plan(*overrides):
        base = ["target=sagemaker", "target.region=eu-west-1", "target.role=arn:aws:iam::1:role/r", *QUICK]
        return job_request.plan(compose([*base, *overrides], with_hydra=True), [], tmp_path, BUCKET)

    plain = plan()  # checkpointing is on by default: a single job syncs, a tuning job's trials do not
    assert plain.checkpoint_uri is None and "train.checkpoint_dir" not in plain.hyperparameters
    spot = plan("target.spot=true")
    assert spot.checkpoint_uri.endswith(f"/checkpoints/{spot.base_job_name}/")  # no sibling prefix synced


def test_a_checkpoint_of_another_runs_settings_is_refused_naming_them(tmp_path):
    class Saved:
        def save_state(self, folder):
            (folder / "state").write_text("weights")

    from kx.backends.monitor import EpochMonitor

    monitor = EpochMonitor()
    monitor.end_epoch(1, {"val_acc": 0.5})
    Checkpoint(str(tmp_path), {"train.learning_rate": "0.05", "model.dense_units": "64"}).save(
        Saved(), monitor
    )
    Checkpoint(str(tmp_path), {"train.learning_rate": "0.05", "model.dense_units": "64"}).check_settings()
    with pytest.raises(CheckpointMismatch) as err:
        Checkpoint(
            str(tmp_path), {"train.learning_rate": "0.001", "model.dense_units": "64"}
        ).check_settings()
    assert "train.learning_rate=0.05 there, 0.001 here" in str(err.value) and "dense_units" not in str(
        err.value
    )


def test_an_early_stopped_trial_keeps_its_value_and_is_pruned():
    when = datetime.datetime(2026, 12, 3, 10, 0, tzinfo=datetime.timezone.utc)
    description = {
        "TrainingJobName": "kx-t-002-ab",
        "TrainingJobStatus": "Stopped",
        "TrainingStartTime": when,
        "TrainingEndTime": when + datetime.timedelta(seconds=95),
        "HyperParameters": {},
    }
    summary = {
        "TrainingJobName": "kx-t-002-ab",
        "TrainingJobStatus": "Stopped",
        "ObjectiveStatus": "Succeeded",
        "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "best_val_acc", "Value": 0.1866},
    }
    trial = tuned_job(summary, description)
    assert (trial.state, trial.objective) == ("PRUNED", 0.1866)
    stopped = tuned_job({**summary, "ObjectiveStatus": "Pending"}, description)  # stopped before any value
    assert (stopped.state, stopped.objective) == ("KILLED", None)
    assert TunedJob({**description, "TrainingJobStatus": "Completed"}, 0.9).state == "COMPLETE"


def test_a_builder_the_job_does_not_ship_is_refused_before_anything_is_built(compose_cfg):
    cfg = compose_cfg("model=custom", "model.builder=examples.mynets:build")
    with pytest.raises(KxError, match=r"model.builder=examples.mynets:build: the job runs only the code"):
        job_request.check_packaged(cfg.model)
    job_request.check_packaged(compose_cfg("model=resnet").model)  # kx's own builders travel with the job


def test_a_rehearsed_job_gets_only_its_own_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_DIR))  # what made examples/ importable in a rehearsal
    monkeypatch.setenv("KX_SECRET_SETTING", "1")
    request = {"TrainingJobName": "kx-job-1", "Environment": {"OMP_NUM_THREADS": "1"}, "HyperParameters": {}}
    (env,) = rehearsal.host_envs(request, ["algo-1"], {"algo-1": tmp_path}).values()
    assert "PYTHONPATH" not in env and "KX_SECRET_SETTING" not in env and env["PATH"]
    assert env["TRAINING_JOB_NAME"] == "kx-job-1" and env["OMP_NUM_THREADS"] == "1"


def trial_logs(root):
    return {p.parent.parent.name: p.read_text() for p in root.glob("*/output/rehearsal.log")}


@pytest.mark.slow
def test_rehearsed_trials_train_their_own_and_compare_with_a_local_sweep_column_for_column(tmp_path, aws):
    local = train(tmp_path, "-m", *QUICK, "train.epochs=2", "sweep.budget.trials=2")
    assert local.returncode == 0, local.stderr[-2000:]
    # spot trials: the tuning job's one CheckpointConfig, synced through S3 (moto) into every trial
    proc = launch(
        tmp_path,
        "target=sagemaker_local",
        *QUICK,
        "train.epochs=2",
        "sweep.budget.trials=2",
        "target.spot=true",
        f"target.bucket={BUCKET}",
        f"target.s3_endpoint={aws['endpoint']}",
        endpoint=aws["endpoint"],
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # SageMaker's numbers, as in the jobs' names (-001, -002) and the report's table
    trials = [line.split(":")[0] for line in proc.stderr.splitlines() if line.startswith("trial ")]
    assert trials == ["trial 1", "trial 2"]
    client = mlflow_client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("kx").experiment_id])
    parents = {
        r.data.tags.get("kx.sweeper") == "sagemaker": r
        for r in runs
        if "mlflow.parentRunId" not in r.data.tags
    }
    sagemaker, mine = (
        [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[k].info.run_id]
        for k in (True, False)
    )
    tuning_job = parents[True].data.tags["kx.sagemaker.tuning_job"]
    root = tmp_path / "outputs" / "sagemaker_local" / tuning_job
    logs = trial_logs(root)
    assert len(logs) == 2 and not any("resuming from the checkpoint" in log for log in logs.values())
    for name in logs:
        hps = json.loads((root / name / "input" / "config" / "hyperparameters.json").read_text())
        assert hps["_tuning_objective_metric"] == "best_val_acc"  # the service's, in every trial
    later = sorted(logs)[-1]  # the service copied the earlier trial's checkpoints into the last one...
    assert {p.name for p in (root / later / "checkpoints").iterdir()} == set(logs)
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="kx/checkpoints/")["Contents"]]
    assert {k.split("/")[3] for k in keys if k.endswith("/algo-1/last/monitor.json")} == set(
        logs
    )  # ...each its own

    assert len(sagemaker) == 2 and len(mine) == 2
    for child in sagemaker:  # each trial's value is its own training's best epoch
        metrics = json.loads(
            (root / child.data.tags["kx.sagemaker.job_name"] / "output" / "data" / "metrics.json").read_text()
        )
        assert child.data.metrics["best_val_acc"] == pytest.approx(metrics["best"]["val_acc"], abs=1e-4)
        assert child.data.params["model.dense_units"] in ("32", "64", "128")
        assert child.data.tags["kx.trial.state"] == "COMPLETE" and child.info.status == "FINISHED"
        assert (
            child.info.end_time - child.info.start_time >= 1000
        )  # the training job's time, not the record's
        # column for column with a local trial: the same params, the same metric names
        assert set(child.data.params) == set(mine[0].data.params)
        assert set(child.data.metrics) - {"billable_seconds"} == set(mine[0].data.metrics)
    retrain = subprocess.run(
        [
            sys.executable,
            str(PROJECT_DIR / "train.py"),
            "--config-dir",
            str(root),
            "--config-name",
            "best_trial",
            "--cfg",
            "job",
        ],
        capture_output=True,
        text=True,
    )
    assert retrain.returncode == 0, retrain.stderr
    assert "_tuning_objective_metric" not in (root / "best_trial.yaml").read_text()


@pytest.mark.slow
def test_the_services_early_stopping_stops_a_trial_by_sigterm_and_its_value_is_kept(tmp_path):
    # lr 0.2 learns, 1e-06 does not; the random sampler with seed 10 tries 0.2 first
    proc = launch(
        tmp_path,
        "target=sagemaker_local",
        *QUICK,
        "train.epochs=40",
        "train.early_stopping.enabled=false",
        'sweep.params={train.learning_rate:"choice(0.2,0.000001)",model.dense_units:"64",model.dropout:"0.0"}',
        "sweep.sampler=random",
        "sweep.seed=10",
        "sweep.pruner=median",
        "sweep.budget.trials=2",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(
        r"^trial 2: \S+-002-\S+ Stopped \(early stopping\) best_val_acc=0\.\d+$", proc.stderr, re.M
    ), proc.stderr
    client = mlflow_client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("kx").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    (stopped,) = [r for r in runs if r.data.tags.get("kx.trial.state") == "PRUNED"]
    assert stopped.data.params["train.learning_rate"] == "1e-06" and stopped.info.status == "KILLED"
    curve = [m.value for m in client.get_metric_history(stopped.info.run_id, "val_acc")]
    assert 1 <= len(curve) < 40  # stopped early, by SIGTERM
    assert stopped.data.metrics["best_val_acc"] == max(curve)  # the best epoch's, not the last epoch's
    log = (
        tmp_path
        / "outputs"
        / "sagemaker_local"
        / parent.data.tags["kx.sagemaker.tuning_job"]
        / stopped.data.tags["kx.sagemaker.job_name"]
        / "output"
        / "rehearsal.log"
    ).read_text()
    assert "SIGTERM received" in log
    assert float(re.findall(r"\b(?:best_)?val_acc=([0-9.]+)", log)[-1]) == pytest.approx(max(curve), abs=1e-4)
    assert parent.data.metrics["trials_pruned"] == 1 and parent.data.metrics["trials_complete"] == 1


@pytest.mark.slow
def test_a_run_never_resumes_a_checkpoint_of_other_settings(tmp_path):
    args = [
        "dataset=digits",
        "model=mlp",
        "train.epochs=1",
        "train.checkpoint_dir=shared",
        "tracking.enabled=false",
    ]
    assert train(tmp_path, *args, "train.learning_rate=0.05").returncode == 0
    other = train(tmp_path, *args, "train.learning_rate=0.001", "model.dense_units=128")
    assert other.returncode == 2 and "Traceback" not in other.stderr and other.stderr.count("\n") == 1
    assert other.stderr.startswith(
        "kx: error: The checkpoint in shared/last belongs to a run with other settings ("
    )
    assert (
        "model.dense_units=" in other.stderr and "train.learning_rate=0.05 there, 0.001 here" in other.stderr
    )
    again = train(tmp_path, *args, "train.learning_rate=0.05")  # the same settings resume
    assert (
        again.returncode == 0 and "resuming from the checkpoint in shared/last after epoch 1" in again.stdout
    )
