"""How long ``GET /ping`` waits while kx's server answers large requests (SageMaker's health check
has a short timeout), here and in another checkout of kx (``--baseline DIR``) on the same model.

Trains one model (tensorflow, mlp on digits, 1 epoch) in a temporary folder, serves its run folder
with each checkout's ``launch.py serve`` in turn, and for ``--seconds`` keeps ``--large`` clients
posting JSON requests of as many images as fit under the 6 MB body limit while one client pings every
20 ms. Prints /ping p50, p99 and max, and the large requests' count and median time.

    python benchmarks/serving_ping.py [--baseline /path/to/other/kx] [--large 4] [--seconds 20]
"""

import argparse
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
LIMIT = 6 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body: bytes = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def large_body() -> Tuple[bytes, int]:
    """Digits-like images (8x8, values 0-16), as many as fit under the body limit, and their count."""
    image = np.random.default_rng(0).integers(0, 17, (8, 8)).tolist()
    count = (LIMIT - 64) // (len(json.dumps(image)) + 2)
    return json.dumps({"instances": [image] * count}).encode(), count


def serve(project: Path, run: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, str(project / "launch.py"), "serve", str(run), f"port={port}"]
    proc = subprocess.Popen(cmd, cwd=run.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if call(port, "GET", "/ping") == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"{' '.join(cmd)} did not start")


def measure(port: int, body: bytes, large: int, seconds: float) -> Dict[str, float]:
    """Ping every 20 ms while ``large`` clients post ``body`` over and over."""
    end, pings, posts = time.monotonic() + seconds, [], []

    def poster() -> None:
        while time.monotonic() < end:
            t0 = time.perf_counter()
            assert call(port, "POST", "/invocations", body) == 200
            posts.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=poster) for _ in range(large)]
    for thread in threads:
        thread.start()
    while time.monotonic() < end:
        t0 = time.perf_counter()
        call(port, "GET", "/ping")
        pings.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    pings.sort()
    return {
        "ping_p50": pings[len(pings) // 2],
        "ping_p99": pings[int(0.99 * (len(pings) - 1))],
        "ping_max": pings[-1],
        "posts": len(posts),
        "post_median": float(np.median(posts or [0])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="another kx checkout to measure the same way")
    parser.add_argument("--large", type=int, default=4, help="clients sending large requests at once")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    body, count = large_body()
    projects: List[Path] = [PROJECT] + ([args.baseline] if args.baseline else [])
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        subprocess.run(
            [
                sys.executable,
                str(PROJECT / "train.py"),
                "model=mlp",
                "dataset=digits",
                "train.epochs=1",
                f"hydra.run.dir={run}",
                "tracking.enabled=false",
            ],
            check=True,
            capture_output=True,
        )
        print(
            f"{args.large} clients posting {len(body) / 1e6:.1f} MB ({count} images) for {args.seconds:.0f} s"
        )
        print(f"{'checkout':<40} {'ping p50 ms':>11} {'p99 ms':>8} {'max ms':>8} {'posts':>6} {'post s':>7}")
        for project in projects:
            port = free_port()
            proc = serve(project, run, port)
            try:
                call(port, "POST", "/invocations", body)  # warm-up
                r = measure(port, body, args.large, args.seconds)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
            print(
                f"{str(project):<40} {r['ping_p50']:>11.1f} {r['ping_p99']:>8.1f} {r['ping_max']:>8.1f} "
                f"{r['posts']:>6d} {r['post_median']:>7.2f}"
            )


if __name__ == "__main__":
    main()
