"""kx's model server against ``mlflow models serve`` on the same model, under the same bounded load.

Trains one model (default: tensorflow, mlp on digits, 1 epoch; any train.py overrides), logs it to a
fresh MLflow store, then serves its MLflow Model ``runs:/<id>/model`` with each server in turn (one
process each, as both start by default) and drives it from a separate load process: ``--clients``
concurrent clients, each sending one validation image per request for ``--seconds``. Prints requests/s,
p50 and p99 latency and errors per server, and kx's ratios against MLflow.

    python benchmarks/serving.py [--clients 32] [--seconds 15] [override ...]
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, List

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))


def train(folder: Path, overrides: List[str]) -> str:
    """Train in ``folder`` (its own MLflow store); return the run id."""
    subprocess.run(
        [sys.executable, str(PROJECT / "train.py"), *overrides, "hydra.run.dir=run"],
        cwd=folder,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("kx").experiment_id])
    return run.info.run_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_image(model_dir: Path) -> Any:
    """One validation image of the model's dataset, as the dataset has it (a batch of one)."""
    from kx.serving import contract
    from kx.serving.predict import validation_images

    return validation_images(contract.load(model_dir), 1, seed=0)[0]


def start(command: List[str], folder: Path, port: int) -> subprocess.Popen:
    """Start a server and wait until it answers (kx: /ping; MLflow: /ping too)."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # mlflow runs `uvicorn`
    proc = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server {' '.join(command)} did not start")


async def drive(url: str, body: bytes, clients: int, seconds: float) -> dict:
    """``clients`` concurrent clients posting ``body`` for ``seconds``; latencies and error count."""
    import aiohttp

    latencies: List[float] = []
    errors = 0
    end = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"}

    async def client(session: "aiohttp.ClientSession") -> None:
        nonlocal errors
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    ok = answer.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                errors += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    latencies.sort()

    def percentile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {
        "rps": len(latencies) / seconds,
        "p50": percentile(0.50),
        "p99": percentile(0.99),
        "errors": errors,
    }


def load(url: str, body: bytes, clients: int, seconds: float) -> dict:
    """Run :func:`drive` in a separate process (the load generator never shares the server's CPU time slices
    with this script's imports) and return its result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as payload:
        Path(payload.name).write_bytes(body)
        out = subprocess.run(
            [sys.executable, __file__, "--drive", url, payload.name, str(clients), str(seconds)],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("overrides", nargs="*", default=["model=mlp", "dataset=digits", "train.epochs=1"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run_id = train(folder, args.overrides)
        uri = f"runs:/{run_id}/model"
        body = json.dumps({"instances": one_image(folder / "run" / "model").tolist()}).encode()
        servers = {
            "kx": lambda port: [sys.executable, str(PROJECT / "launch.py"), "serve", uri, f"port={port}"],
            "mlflow": lambda port: [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                uri,
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "--env-manager",
                "local",
            ],
        }
        results = {}
        for name, command in servers.items():
            port = free_port()
            proc = start(command(port), folder, port)
            try:
                load(f"http://127.0.0.1:{port}/invocations", body, args.clients, 2.0)  # warm-up
                results[name] = load(f"http://127.0.0.1:{port}/invocations", body, args.clients, args.seconds)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    report(results, args)


def report(results: dict, args: argparse.Namespace) -> None:
    print(
        f"{args.clients} concurrent clients, {args.seconds:.0f} s each, one image per request; "
        f"model: {' '.join(args.overrides)}"
    )
    print(f"{'server':<8} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in results.items():
        print(f"{name:<8} {r['rps']:>11.1f} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['errors']:>7d}")
    kx, baseline = results["kx"], results["mlflow"]
    print(
        f"kx / mlflow: throughput x{kx['rps'] / baseline['rps']:.2f}, p99 x{kx['p99'] / baseline['p99']:.2f}"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--drive"]:
        url, payload, clients, seconds = sys.argv[2:6]
        body = Path(payload).read_bytes()
        print(json.dumps(asyncio.run(drive(url, body, int(clients), float(seconds)))))
    else:
        main()
