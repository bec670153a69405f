"""Hostile requests to ``launch.py serve`` over real sockets (issue 20): each gets a JSON 4xx or 2xx,
nothing is allocated from a lying header, large requests are split and never stall ``/ping``, stalled
or vanished clients cost one timeout or nothing, and the server answers afterwards."""

import http.client
import io
import json
import socket
import threading
import time
from typing import List, Tuple

import numpy as np
import pytest

from tests.conftest import train
from tests.helpers.processes import busy
from tests.helpers.serving import request, server

pytestmark = pytest.mark.slow

LIMIT = 2_000_000  # max_body_bytes
TIMEOUT_S = 2  # read_timeout_s
MAX_BATCH = 16


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, port, work folder) of a server for a tiny TensorFlow digits model."""
    folder = tmp_path_factory.mktemp("fuzz")
    proc = train(
        folder, "model=mlp", "dataset=digits", "train.epochs=1", "hydra.run.dir=run", "tracking.enabled=false"
    )
    assert proc.returncode == 0, proc.stderr
    settings = [f"max_body_bytes={LIMIT}", f"read_timeout_s={TIMEOUT_S}", f"max_batch={MAX_BATCH}"]
    with server("run", *settings, cwd=folder) as url:
        yield url, int(url.rsplit(":", 1)[1]), folder


def post(port: int, body: bytes, content_type: str = "application/json") -> Tuple[int, str, bytes]:
    """(status, content type, body) of one POST /invocations."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
        answer = connection.getresponse()
        return answer.status, answer.getheader("content-type", ""), answer.read()
    finally:
        connection.close()


def raw(port: int, data: bytes, close_after: float = 0.0) -> bytes:
    """Send ``data`` on a fresh socket; return what the server answers (until it closes or 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if close_after:
            time.sleep(close_after)
            return b""
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return answer


def npy(shape: Tuple[int, ...], descr: str, data: bytes) -> bytes:
    """A .npy body whose header claims ``shape`` and ``descr`` whatever ``data`` holds."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def hostile_bodies() -> List[Tuple[str, bytes, str]]:
    """(what, body, content type): each must get a JSON 400 naming the problem."""
    image = np.zeros((1, 8, 8), np.uint8)
    saved = io.BytesIO()
    np.save(saved, image.astype(np.complex64))
    return [
        ("JSON nested 2,000 deep", b"[" * 2000 + b"]" * 2000, "application/json"),
        (
            "JSON nested 100,000 deep",
            b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "application/json",
        ),
        ("JSON nested 40 deep", b"[" * 40 + b"1" + b"]" * 40, "application/json"),
        ("integers past int64", json.dumps([[[10**40] * 8] * 8]).encode(), "application/json"),
        ("booleans", json.dumps([[[True] * 8] * 8]).encode(), "application/json"),
        (
            "1e400 (infinite)",
            b"[[" + b",".join([b"[" + b",".join([b"1e400"] * 8) + b"]"] * 8) + b"]]",
            "application/json",
        ),
        ("objects", json.dumps([[[{"a": 1}] * 8] * 8]).encode(), "application/json"),
        ("not UTF-8", b"\xff\xfe[[[1]]]", "application/json"),
        (".npy claiming 1e13 images", npy((10**13, 8, 8), "|u1", b"\0" * 64), "application/x-npy"),
        (".npy claiming fewer bytes", npy((1, 8, 8), "|u1", b"\0" * 640), "application/x-npy"),
        (".npy of Python objects", npy((1, 8, 8), "|O", b"\0" * 512), "application/x-npy"),
        (".npy with a negative shape", npy((-1, 8, 8), "|u1", b"\0" * 64), "application/x-npy"),
        (
            ".npy with a huge header",
            b"\x93NUMPY\x02\x00" + (10**6).to_bytes(4, "little") + b"{" * 10**6,
            "application/x-npy",
        ),
        (".npy of complex numbers", saved.getvalue(), "application/x-npy"),
        (".npy of a structured dtype", npy((1, 8, 8), "[('a', '|u1')]", b"\0" * 64), "application/x-npy"),
        (".npy scalar", npy((), "<f4", b"\0" * 4), "application/x-npy"),
    ]


def test_hostile_bodies_get_a_json_400_and_the_server_goes_on(served):
    url, port, folder = served
    for what, body, content_type in hostile_bodies():
        status, kind, text = post(port, body, content_type)
        assert status == 400 and kind == "application/json", (what, status, kind, text[:300])
        assert set(json.loads(text)) == {"error"}, what
    assert request(url, "GET", "/ping")[0] == 200
    log = next(folder.glob("serve-*.log")).read_text()
    assert "Traceback" not in log and "Error" not in log, log[-2000:]


def test_a_large_request_is_split_into_max_batch_pieces(served):
    url, port, _ = served
    images = np.random.default_rng(0).integers(0, 17, (5 * MAX_BATCH + 3, 8, 8)).astype(np.uint8)
    before = request(url, "GET", "/ping")[1]
    status, _, text = post(port, json.dumps(images.tolist()).encode())
    after = request(url, "GET", "/ping")[1]
    assert status == 200 and len(json.loads(text)["predictions"]) == len(images)
    assert after["batches"] - before["batches"] >= 6 and after["requests"] - before["requests"] == 1
    one = json.loads(post(port, json.dumps(images[-1:].tolist()).encode())[2])["predictions"]
    np.testing.assert_allclose(json.loads(text)["predictions"][-1], one[0], atol=1e-5)


def test_ping_answers_while_large_requests_are_served(served):
    url, port, _ = served
    body = json.dumps(np.ones((LIMIT // 220, 8, 8), np.uint8).tolist()).encode()
    assert len(body) < LIMIT
    end = time.monotonic() + 8
    statuses: List[int] = []

    def poster() -> None:
        while time.monotonic() < end:
            statuses.append(post(port, body)[0])

    threads = [threading.Thread(target=poster) for _ in range(3)]
    for thread in threads:
        thread.start()
    pings = []
    while time.monotonic() < end:
        t0 = time.perf_counter()
        assert request(url, "GET", "/ping")[0] == 200
        pings.append(time.perf_counter() - t0)
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert statuses and set(statuses) == {200}
    assert sorted(pings)[int(0.9 * len(pings))] < 0.5, sorted(pings)[-10:]


def test_stalled_lying_and_vanished_clients(served):
    url, port, folder = served
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    t0 = time.monotonic()
    answer = raw(port, head + b"Content-Length: 1000\r\n\r\n[[[1")  # says 1000 bytes, sends 4, waits
    assert (
        b" 408 " in answer.split(b"\r\n")[0] and b"application/json" in answer and b"read_timeout_s" in answer
    )
    assert time.monotonic() - t0 < TIMEOUT_S + 5 * busy()
    answer = raw(port, head + b"Content-Length: 3\r\n\r\n[[[1]]]")  # says 3 bytes, sends more
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    answer = raw(port, b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
    assert answer == b"" or answer.split(b" ")[1][:1] in (b"2", b"4"), answer[:200]  # answered or refused
    answer = raw(port, head + b"Connection: close\r\nContent-Length: 99999999999\r\n\r\n")
    assert b" 413 " in answer.split(b"\r\n")[0] and b"max_body_bytes" in answer
    for _ in range(50):  # clients that leave halfway through their body
        raw(port, head + b"Content-Length: 5000\r\n\r\n[[[1, 2", close_after=0.01)
    time.sleep(1)
    assert request(url, "GET", "/ping")[0] == 200
    log = next(folder.glob("serve-*.log")).read_text()
    assert "Traceback" not in log and "ClientDisconnect" not in log, log[-3000:]
