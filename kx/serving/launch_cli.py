"""launch.py's serving commands: ``serve``, ``predict``, ``deploy``, ``undeploy``."""

import argparse
from pathlib import Path
from typing import List

from kx.errors import KxError
from kx.sagemaker.settings import aws_session
from kx.serving.config import parse
from kx.serving.deploy import Deployment, endpoint_name, sagemaker_target
from kx.serving.deploy import deploy as run_deploy
from kx.serving.deploy import undeploy as run_undeploy
from kx.serving.model import load
from kx.serving.predict import run
from kx.serving.source import model_folder


def serve(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="launch.py serve",
        description="Serve an exported kx model over HTTP (SageMaker and TF Serving routes).",
    )
    parser.add_argument(
        "model", help="run folder, model folder, MLflow run id, runs:/<id>/model or models:/<name>/<version>"
    )
    parser.add_argument(
        "settings",
        nargs="*",
        help="key=value: host, port, max_batch, max_wait_ms, max_body_bytes, read_timeout_s, model_name, format, log_level",
    )
    parser.add_argument("--tracking-uri", help="the MLflow store for run ids and URIs (default: kx's)")
    args = parser.parse_args(argv)
    from kx.serving.server import serve as run_server

    cfg = parse(args.settings)
    model = load(model_folder(args.model, args.tracking_uri), cfg.format or "")
    run_server(model, cfg)
    return 0


def predict(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="launch.py predict", description="Ask a model about random validation images."
    )
    parser.add_argument("target", help="http://host:port of a running server, or a model as for `serve`")
    parser.add_argument("--samples", type=int, default=5, help="how many images (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="which images: the same seed, the same images")
    parser.add_argument(
        "--out",
        type=Path,
        help="the PNG grid (default: predictions.png in a run folder target, else in outputs/)",
    )
    parser.add_argument("--tracking-uri", help="the MLflow store for run ids and URIs (default: kx's)")
    args = parser.parse_args(argv)
    if args.samples < 1:
        raise KxError(f"--samples={args.samples} is not allowed: give at least 1.")

    return run(args.target, args.samples, args.seed, args.out, args.tracking_uri)


def deploy(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="launch.py deploy", description="Deploy a model to a SageMaker endpoint."
    )
    parser.add_argument(
        "source",
        help="training job, tuning job (its best job), MLflow run id or runs:/ URI, or a model folder",
    )
    parser.add_argument(
        "overrides", nargs="*", help="target.role=, target.region=, target.bucket=, target.prefix="
    )
    parser.add_argument("--instance-type", default="ml.m5.large")
    parser.add_argument("--endpoint", help="the endpoint's name (default kx-<backend>-<time>)")
    parser.add_argument("--no-wait", action="store_true", help="return once the endpoint is Creating")
    parser.add_argument("--tracking-uri", help="the MLflow store for run ids and URIs (default: kx's)")
    args = parser.parse_args(argv)

    target = sagemaker_target(args.overrides)
    if not target.role or not target.bucket:
        raise KxError(
            "deploy needs target.role (or $KX_SAGEMAKER_ROLE) and target.bucket (or $KX_SAGEMAKER_BUCKET)."
        )
    name = args.endpoint or endpoint_name()
    session = aws_session(target.region)
    deployment = Deployment(
        target.role,
        session.region_name,
        target.bucket,
        target.prefix,
        args.instance_type,
        name,
        wait=not args.no_wait,
    )
    status = run_deploy(args.source, deployment, session, args.tracking_uri)
    print(f"{name}: {status}")
    return 0


def undeploy(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="launch.py undeploy", description="Delete an endpoint, its config and model."
    )
    parser.add_argument("endpoint")
    parser.add_argument("overrides", nargs="*", help="target.region=")
    args = parser.parse_args(argv)

    run_undeploy(args.endpoint, aws_session(sagemaker_target(args.overrides).region))
    print(f"{args.endpoint}: deleted (endpoint, endpoint config, model)")
    return 0


def main(argv: List[str]) -> int:
    """Dispatch ``argv``: ``serve``, ``predict``, ``deploy`` or ``undeploy`` and its arguments."""
    return {"serve": serve, "predict": predict, "deploy": deploy, "undeploy": undeploy}[argv[0]](argv[1:])
