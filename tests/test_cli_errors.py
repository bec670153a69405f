"""Bad input on the command line: one `kx: error:` line, exit code 2, and no run folder left behind."""

import pytest

from kx.tracking.mlflow_tracker import MLflowRun
from kx.train_cli import hydra_args
from tests.conftest import free_port, train
from tests.helpers.moto import ROLE

UNKNOWN_EPOCHZ = "Unknown config key train.epochz; did you mean train.epochs?"


@pytest.mark.parametrize(
    "args, message",
    [
        (["train.epochz=3"], UNKNOWN_EPOCHZ),
        (["+train.epochz=3"], UNKNOWN_EPOCHZ),  # Hydra's own hint must not add the typo
        (["++train.epochz=3", "--cfg", "job"], UNKNOWN_EPOCHZ),
        (["-m", "train.epochz=1,2"], UNKNOWN_EPOCHZ),
        (
            ["dataset=digits", "dataset.limt=5"],
            "Unknown config key dataset.limt; did you mean dataset.limit?",
        ),
        (
            ["model.conv_layers.0.filterz=8"],
            "Unknown config key model.conv_layers.0.filterz; did you mean model.conv_layers.0.filters?",
        ),
        (["train.epochs=abc"], "Invalid config value train.epochs=abc: expected an integer."),
        (["dataset.limit=many"], "Invalid config value dataset.limit=many: expected an integer, or null."),
        (
            ["train.optimizer=adamw"],
            "Invalid config value train.optimizer=adamw: expected one of sgd, adam, rmsprop.",
        ),
        (["train.epochs=0"], "Invalid config value train.epochs=0: expected an integer >= 1."),
        (
            ["-m", "sweep=quick", "--cfg", "job"],
            "--multirun and --cfg given together: choose one of --run, --multirun, --cfg, --info, --shell-completion.",
        ),
        (["backend=caffe"], "Unknown option backend=caffe: choose one of jax, mxnet, tensorflow, torch."),
        (
            ["-m", "backend=tensorflow,caffe"],
            "Unknown option backend=caffe: choose one of jax, mxnet, tensorflow, torch.",
        ),
        (
            ["train.epochs=[1"],
            "Cannot parse the override train.epochs=[1: no viable alternative at input '[1' "
            "(Hydra's override grammar: key=value, group=option).",
        ),
    ],
)
def test_train_py_bad_input_is_one_line_exit_2_and_no_run_folder(tmp_path, check_train, args, message):
    proc = check_train(*args)
    assert (proc.returncode, proc.stderr) == (2, f"kx: error: {message}\n")
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_train_py_process_ends_bad_input_in_one_line_exit_2_and_no_run_folder(tmp_path):
    """The cases above end to end: ``python train.py`` itself, the one line its user sees."""
    proc = train(tmp_path, "-m", "train.epochz=1,2", timeout=60)
    assert (proc.returncode, proc.stderr) == (2, f"kx: error: {UNKNOWN_EPOCHZ}\n")
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []


def test_output_folder_that_cannot_be_created_is_one_line(tmp_path, check_train):
    (tmp_path / "blocker").write_text("a file where the run folder's parent should be")
    proc = check_train("hydra.run.dir=blocker/run")
    assert (proc.returncode, proc.stderr) == (
        2,
        "kx: error: Cannot write the run's output folder hydra.run.dir="
        "blocker/run (Not a directory); choose a writable folder with "
        "hydra.run.dir=DIR.\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_declared_additions_stay_open(train_here):
    """A Dict field (target.tags) takes new keys with +; only undeclared keys are refused."""
    proc = train_here("target=sagemaker", "+target.tags.team=ml", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    assert "team: ml" in proc.stdout


def test_hydra_argument_parser_is_pinned():
    """kx.train_cli reads argv with Hydra's private parser; this pins the fields kx relies on."""
    args = hydra_args(["-m", "a=1,2", "--cfg", "job"])
    assert (args.multirun, args.cfg, args.overrides, args.help) == (True, "job", ["a=1,2"], False)
    assert hydra_args(["--info"]).info == "all" and hydra_args(["-cn", "x"]).config_name == "x"


def test_launch_refuses_an_added_typo_instead_of_sending_it(launch_here):
    proc = launch_here(
        "target=sagemaker", f"target.role={ROLE}", "target.bucket=b", "+train.epochz=3", "--dry-run"
    )
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, f"kx: error: {UNKNOWN_EPOCHZ}\n", "")


def test_launch_reports_every_missing_setting_at_once(launch_here):
    proc = launch_here(
        "target=sagemaker",
        "--dry-run",
        env={"KX_SAGEMAKER_ROLE": None, "KX_SAGEMAKER_BUCKET": None},
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("kx: error: launch.py needs 2 more setting(s): target.role (")
    assert "; target.bucket (--dry-run cannot ask AWS" in proc.stderr


def test_missing_credentials_say_how_to_provide_them(tmp_path, launch_here):
    env = {
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_SESSION_TOKEN": None,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }
    submit = launch_here("target=sagemaker", f"target.role={ROLE}", "target.bucket=b", env=env)
    assert submit.returncode == 2 and submit.stderr.count("\n") == 1
    assert "launch.py needs 1 more setting(s): AWS credentials (read from AWS_ACCESS_KEY_ID" in submit.stderr
    status = launch_here("status", "kx-job", env=env)
    assert status.returncode == 2 and status.stderr.count("\n") == 1
    assert status.stderr.startswith(
        "kx: error: NoCredentialsError: Unable to locate credentials. AWS credentials "
        "are read from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE"
    )


def test_credentials_in_a_tracking_uri_stay_out_of_messages(train_here):
    uri = f"http://kxuser:s3cr3t@127.0.0.1:{free_port()}"
    proc = train_here("dataset=digits", "model=mlp", f"tracking.uri={uri}")
    assert proc.returncode == 2 and "s3cr3t" not in proc.stderr + proc.stdout
    assert "tracking.uri='http://***@127.0.0.1:" in proc.stderr


def test_credentials_stay_out_of_params_and_tags(mlflow_store):
    run = MLflowRun(mlflow_store, "kx")
    secret_uri = "https://kxuser:s3cr3t@mlflow.example.com"
    run.start(None, {"kx.overrides": f"tracking.uri={secret_uri}"}, None)
    run.log_params({"tracking.uri": secret_uri})
    run.set_tags({"note": secret_uri})
    stored = run.client.get_run(run.run_id).data
    assert stored.params["tracking.uri"] == "https://***@mlflow.example.com"
    assert stored.tags["kx.overrides"] == "tracking.uri=https://***@mlflow.example.com"
    assert "s3cr3t" not in repr(stored.params) + repr(stored.tags)


def test_credentials_stay_out_of_the_ui_link():
    from kx.tracking.links import run_link

    link = run_link("https://kxuser:s3cr3t@mlflow.example.com/", "3", "abc")
    assert link == "https://mlflow.example.com/#/experiments/3/runs/abc?workflowType=machine_learning"
