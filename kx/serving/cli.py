"""The serving subcommands of launch.py: ``serve``, ``predict``."""

import argparse
from pathlib import Path
from typing import List

from kx.errors import KxError

COMMANDS = ("serve", "predict")


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
        help="key=value: host, port, max_batch, max_wait_ms, max_body_bytes, model_name, format, log_level",
    )
    parser.add_argument("--tracking-uri", help="the MLflow store for run ids and URIs (default: kx's)")
    args = parser.parse_args(argv)
    from kx.serving.config import parse
    from kx.serving.model import load
    from kx.serving.server import serve as run_server
    from kx.serving.source import model_folder

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
        "--out", type=Path, default=Path("predictions.png"), help="the PNG grid (default predictions.png)"
    )
    parser.add_argument("--tracking-uri", help="the MLflow store for run ids and URIs (default: kx's)")
    args = parser.parse_args(argv)
    if args.samples < 1:
        raise KxError(f"--samples={args.samples} is not allowed: give at least 1.")
    from kx.serving.predict import run

    return run(args.target, args.samples, args.seed, args.out, args.tracking_uri)


def main(argv: List[str]) -> int:
    """Dispatch ``argv`` (``serve ...`` or ``predict ...``)."""
    return {"serve": serve, "predict": predict}[argv[0]](argv[1:])
