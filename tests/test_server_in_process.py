"""kx.serving.server's app in this process (uvicorn on a thread, a free loopback port) around a model
that is a numpy function: the routes, batching and one-line errors without training or loading an
export (tests/test_serving.py does both, end to end, on every backend)."""

import socket
import threading
import time
from typing import Iterator, Tuple

import numpy as np
import pytest

from kx.serving.config import ServeConfig
from kx.serving.contract import Contract
from kx.serving.model import ServedModel
from kx.serving.server import create_app
from tests.helpers.serving import post_json, request

CLASSES = 3


def brightness(x: np.ndarray) -> np.ndarray:
    """Class probabilities from an image's mean brightness (model input in [0, 1])."""
    mean = x.reshape(len(x), -1).mean(axis=1)
    return np.stack([1 - mean, mean, np.zeros_like(mean)], axis=1)


def model() -> ServedModel:
    contract = Contract(
        name="tiny",
        version=3,
        backend="fake",
        layout="channels_last",
        input_shape=[4, 4, 1],
        raw_dtype="uint8",
        raw_shape=[4, 4],
        scale=255.0,
        class_names=[str(i) for i in range(CLASSES)],
        files={},
    )
    return ServedModel(contract, "numpy", brightness)


@pytest.fixture
def served() -> Iterator[Tuple[str, ServeConfig]]:
    """The app on a free 127.0.0.1 port until the test ends (uvicorn stopped through should_exit)."""
    import uvicorn

    cfg = ServeConfig(port=0, max_batch=4, max_wait_ms=20.0)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(model(), cfg), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 60
    while request(url, "GET", "/ping", timeout=1)[0] != 200:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield url, cfg
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_both_contracts_routes_answer_with_the_models_probabilities(served):
    url, _ = served
    images = [[[0] * 4] * 4, [[255] * 4] * 4]
    expected = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert post_json(url, "/invocations", images) == (200, {"predictions": expected})
    assert post_json(url, "/invocations", {"instances": images}) == (200, {"predictions": expected})
    assert post_json(url, "/v1/models/tiny:predict", {"inputs": images}) == (200, {"predictions": expected})
    status, doc = request(url, "GET", "/v1/models/tiny")
    assert status == 200 and doc["model_version_status"][0]["version"] == "3"
    status, doc = request(url, "GET", "/v1/models/tiny/metadata")
    assert status == 200 and doc["contract"]["class_names"] == ["0", "1", "2"]


def test_a_large_request_is_split_into_max_batch_pieces(served):
    url, cfg = served
    before = request(url, "GET", "/ping")[1]
    images = np.full((3 * cfg.max_batch + 1, 4, 4), 255, np.uint8)
    status, doc = post_json(url, "/invocations", images.tolist())
    after = request(url, "GET", "/ping")[1]
    assert status == 200 and np.allclose(doc["predictions"], [[0, 1, 0]] * len(images))
    assert after["batches"] - before["batches"] == 4 and after["requests"] - before["requests"] == 1


@pytest.mark.parametrize(
    "path, body, status, words",
    [
        ("/invocations", [[[1, 2], [3, 4]]], 400, "expected a batch of uint8 images of shape (N, 4, 4)"),
        ("/invocations", [[[300] * 4] * 4], 400, "pixel values must be whole numbers in [0, 255]"),
        ("/invocations", "not images", 400, "expected a list of images, got JSON str"),
        ("/v1/models/other:predict", {"instances": [[[0] * 4] * 4]}, 404, "this server serves 'tiny'"),
    ],
)
def test_bad_requests_get_a_one_line_json_error_and_the_server_goes_on(served, path, body, status, words):
    url, _ = served
    got, doc = post_json(url, path, body)
    assert got == status and set(doc) == {"error"} and "\n" not in doc["error"] and words in doc["error"]
    assert request(url, "GET", "/ping")[0] == 200
    assert post_json(url, "/invocations", [[[0] * 4] * 4])[0] == 200
