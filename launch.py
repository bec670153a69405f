"""Run a kx experiment as a SageMaker training job, from the same configs as train.py.

    python launch.py target=sagemaker backend=tensorflow train.epochs=20 [--dry-run] [--no-wait] [--logs]
    python launch.py target=sagemaker_local backend=mxnet          # rehearse the job here, no Docker
    python launch.py target=sagemaker sweep=quick [--dry-run]   # a tuning job from conf/sweep/quick.yaml
    python launch.py status JOB_NAME                  # a training or tuning job
    python launch.py logs JOB_NAME
    python launch.py stop JOB_NAME
    python launch.py results TUNING_JOB_NAME          # its trials as MLflow runs (again: updates)
    python launch.py serve RUN_FOLDER|MODEL_DIR|runs:/RUN_ID/model [port=8080 ...]   # an HTTP endpoint here
    python launch.py predict http://127.0.0.1:8080|RUN_FOLDER|ENDPOINT --samples 5
    python launch.py deploy TRAINING_JOB|TUNING_JOB|MLFLOW_RUN_ID [target.region=...]   # a SageMaker endpoint
    python launch.py undeploy ENDPOINT
    python launch.py ui [--port 5000] [tracking.uri=...]   # MLflow's UI on the store; links to the latest sweep

The job's result (status, final metrics, billable time, model artifact) is logged to MLflow.
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, List, NoReturn, Optional

from hydra.errors import HydraException
from omegaconf import DictConfig

from kx import process
from kx.errors import KxError, missing_extra, one_line
from kx.quiet import quiet_console
from kx.run_config import compose, validate

TARGETS = ("sagemaker", "sagemaker_local")
SERVING_COMMANDS = ("serve", "predict", "deploy", "undeploy")  # kx/serving/launch_cli.py


def fail(message: str) -> NoReturn:
    print(f"kx: error: {message}", file=sys.stderr)
    sys.exit(2)


def compose_config(overrides: List[str]) -> DictConfig:
    """The same config train.py would compose for ``overrides`` (Hydra's settings included)."""
    cfg = compose(overrides, with_hydra=True)
    if cfg.target.name not in TARGETS:
        raise KxError(
            f"target={cfg.target.name} is not launched: launch.py runs target=sagemaker or "
            "target=sagemaker_local; train locally with `python train.py`."
        )
    validate(cfg)
    return cfg


def clients(target: DictConfig) -> Any:
    """The AWS session in the target's region (as boto3 resolves it when unset) and its clients; the
    resolved region becomes ``target.region``, which the request and image URIs name."""
    from kx.sagemaker.settings import aws_session

    session = aws_session(target.region, rehearsal=target.name == "sagemaker_local")
    target.region = session.region_name
    return session, session.client("sagemaker"), session.client("s3")


def sdk_config(telemetry: bool) -> dict:
    """The SDK's defaults config (user and admin files), with its usage telemetry off unless wanted."""
    from sagemaker.core.config.config import load_sagemaker_config

    config = load_sagemaker_config() or {"SchemaVersion": "1.0"}
    if not telemetry:
        modules = config.setdefault("SageMaker", {}).setdefault("PythonSDK", {}).setdefault("Modules", {})
        modules["TelemetryOptOut"] = True
    return config


def submit(cfg: DictConfig, overrides: List[str], dry_run: bool, wait: bool, stream_logs: bool) -> int:
    from kx.sagemaker import job_request, settings
    from kx.sagemaker.validate import validate as validate_request

    target = cfg.target
    local = target.name == "sagemaker_local"
    if dry_run or local:
        process.sagemaker_without_aws()
    boto_session, sm, s3 = clients(target)  # no request is sent until a call below
    settings.check(cfg, dry_run, boto_session)  # every missing setting in one line
    session = job_request.pipeline_session(boto_session, sdk_config(target.sdk_telemetry), target.bucket)
    bucket = target.bucket or session.default_bucket()
    with tempfile.TemporaryDirectory() as tmp:
        job = job_request.plan(cfg, overrides, Path(tmp), bucket)
        trainer = job_request.model_trainer(cfg, job, session)
        if cfg.get("sweep"):
            from kx.sagemaker import tuning_jobs

            return tuning_jobs.launch(cfg, trainer, job, session, (sm, s3), dry_run, wait)
        name = job_request.job_name(job.base_job_name)
        request = job_request.request(session, trainer.train(wait=False, logs=False), "TrainingJobName", name)
        validate_request(request, "CreateTrainingJob")
        if dry_run:
            print(json.dumps(request, indent=2, default=str))
            return 0
        if local:
            return rehearse(cfg, overrides, request, job)
        for item in job.uploads:
            uploaded = job_request.upload(s3, item)
            print(f"{'uploaded' if uploaded else 'already in S3, skipped'}: {item.uri}", file=sys.stderr)
        sm.create_training_job(**request)
    print(name)
    if not wait:
        return 0
    return follow(cfg, overrides, sm, name, stream_logs, boto_session)


def follow(
    cfg: DictConfig, overrides: List[str], sm: Any, name: str, stream_logs: bool, boto_session: Any
) -> int:
    from kx.sagemaker.job_watch import LogTail, fetch_output, summary, wait

    tail = LogTail(boto_session.client("logs"), name) if stream_logs else None
    description = wait(sm, name, cfg.target.poll_s, tail)
    if description is None:
        return 130  # Ctrl-C: the job runs on
    with tempfile.TemporaryDirectory() as tmp:
        output = fetch_output(boto_session.client("s3"), description, Path(tmp))
        return report(cfg, overrides, summary(description), output)


def rehearse(cfg: DictConfig, overrides: List[str], request: dict, job: Any) -> int:
    from kx.sagemaker import rehearsal
    from kx.sagemaker.job_watch import summary

    root = Path(cfg.target.root).resolve() / request["TrainingJobName"]
    description = rehearsal.run(cfg, request, job, root)
    description.pop("BillableTimeInSeconds", None)  # a rehearsal costs nothing
    chief = root if request["ResourceConfig"]["InstanceCount"] == 1 else root / "algo-1"
    return report(cfg, overrides, summary(description), chief / "output" / "data", chief / "model")


def report(
    cfg: DictConfig,
    overrides: List[str],
    job: dict,
    output: Optional[Path] = None,
    model: Optional[Path] = None,
) -> int:
    """Print the job's outcome, log it to MLflow (with its output data and model when they are here),
    and return the exit code."""
    from kx.sagemaker.job_tracking import record_job

    metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(job["final_metrics"].items()))
    print(f"{job['job_name']}: {job['status']} {metrics}".rstrip(), file=sys.stderr)
    if job["model_artifacts"]:
        print(f"model: {job['model_artifacts']}", file=sys.stderr)
    record_job(cfg, job, overrides, output=output, model=model)  # ends with the run's link
    if job["status"] != "Completed":
        print(
            f"kx: error: job {job['job_name']} {job['status']}: {job.get('failure_reason')}", file=sys.stderr
        )
        return 1
    return 0


def reattach(command: str, name: str, overrides: List[str]) -> int:
    """``status|stop|results NAME`` (kx.sagemaker.launch_cli); ``logs NAME`` prints a training job's
    logs, following it while it runs."""
    from kx.sagemaker import launch_cli
    from kx.sagemaker.job_watch import TERMINAL, LogTail

    cfg = compose_config(["target=sagemaker", *overrides])
    boto_session, sm, s3 = clients(cfg.target)
    if command == "status":
        return launch_cli.status(sm, name)
    if command == "stop":
        return launch_cli.stop(sm, name)
    if command == "results":
        return launch_cli.results(cfg, sm, s3, name)
    tail = LogTail(boto_session.client("logs"), name)
    while True:
        status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
        tail.poll()
        if status in TERMINAL:
            return 0
        time.sleep(cfg.target.poll_s)


def ui(argv: List[str]) -> int:
    """``ui [--port P] [OVERRIDES]``: MLflow's UI on the configured store (kx.tracking.ui)."""
    from kx.tracking.ui import serve

    parser = argparse.ArgumentParser(prog="launch.py ui", description=ui.__doc__)
    parser.add_argument("--port", type=int, help="the UI's port on 127.0.0.1 (default: a free one)")
    parser.add_argument("overrides", nargs="*", help="e.g. tracking.uri=sqlite:///mlflow.db")
    args = parser.parse_args(argv)
    if args.port is not None and not 1 <= args.port <= 65535:
        raise KxError(f"--port {args.port} is not a port: give one from 1 to 65535, or none for a free one.")
    return serve(compose(args.overrides).tracking, args.port)


def console() -> None:
    """kx's lines (the MLflow links among them) as plain messages on stderr; the SDK's, boto's and
    MLflow's only from ERROR (:mod:`kx.quiet`)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    process.quiet_libraries()
    quiet_console()


def main(argv: List[str]) -> int:
    if argv and argv[0] == "ui":
        return ui(argv[1:])
    if argv and argv[0] in SERVING_COMMANDS:
        from kx.serving.launch_cli import main as serving

        return serving(argv)
    console()
    if argv and argv[0] in ("status", "logs", "stop", "results"):
        parser = argparse.ArgumentParser(prog=f"launch.py {argv[0]}")
        parser.add_argument("job_name")
        parser.add_argument("overrides", nargs="*", help="e.g. target.region=us-east-1")
        args = parser.parse_args(argv[1:])
        return reattach(argv[0], args.job_name, args.overrides)
    parser = argparse.ArgumentParser(
        prog="launch.py",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("overrides", nargs="*", help="config overrides, as for train.py")
    parser.add_argument("--dry-run", action="store_true", help="print the validated request; send nothing")
    parser.add_argument("--no-wait", action="store_true", help="print the job name and return")
    parser.add_argument("--logs", action="store_true", help="stream the job's logs while waiting")
    args = parser.parse_args(argv)
    cfg = compose_config(args.overrides)
    return submit(cfg, args.overrides, args.dry_run, not args.no_wait, args.logs)


def run(argv: List[str]) -> int:
    """:func:`main`'s exit code; bad input and AWS errors end in one ``kx: error:`` line, exit 2."""
    try:
        return main(argv)
    except (KxError, HydraException) as err:
        fail(one_line(err))
    except ModuleNotFoundError as err:
        message = missing_extra(err, "launch.py")
        if message is None:
            raise
        fail(message)
    except Exception as err:  # noqa: BLE001 - AWS errors (credentials, endpoints, API) as one line
        if type(err).__module__.startswith(("botocore", "boto3")):
            from kx.sagemaker.settings import aws_error_message

            fail(aws_error_message(err))
        raise


if __name__ == "__main__":
    code = run(sys.argv[1:])
    if "--dry-run" in sys.argv[1:]:  # nothing is pending: skip tearing down the SDK's modules
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code)
