"""Serving every backend's export over real HTTP: SageMaker's and TF Serving's routes, dynamic batching,
bad input, MLflow Models, and launch.py serve/predict.

One tiny model per backend (digits, mlp, 2 epochs) is trained per module and served from a subprocess;
its answers are compared with the trained model's own probabilities (tests/helpers/reference.py).
"""

import importlib.util
import io
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.conftest import PROJECT_DIR, train
from tests.helpers.serving import launch, post_json, request, server

BACKENDS = [
    pytest.param(
        name, marks=pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} missing")
    )
    for name, module in (("tensorflow", "tensorflow"), ("mxnet", "mxnet"), ("jax", "jax"), ("torch", "torch"))
]
FORMATS = {"tensorflow": "saved_model", "jax": "saved_model", "mxnet": "mxnet", "torch": "keras"}
LIMIT = 400_000  # max_body_bytes for these servers; the whole validation set fits in it


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory):
    """(backend, base URL, reference arrays, work folder, served name) for one trained model."""
    backend = request.param
    folder = tmp_path_factory.mktemp(backend)
    proc = train(
        folder, f"backend={backend}", "model=mlp", "dataset=digits", "train.epochs=2", "hydra.run.dir=run"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    script = PROJECT_DIR / "tests" / "helpers" / "reference.py"
    ref = subprocess.run(
        [sys.executable, str(script), str(folder / "run"), uri, "ref.npz"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert ref.returncode == 0, ref.stderr
    reference = dict(np.load(folder / "ref.npz"))
    # Two backends are served from their run folder, two from their MLflow Model under another name.
    source = "run" if backend in ("tensorflow", "jax") else f"runs:/{reference['run_id']}/model"
    name = "model" if source == "run" else "digits"
    with server(source, f"max_body_bytes={LIMIT}", "max_wait_ms=20", f"model_name={name}", cwd=folder) as url:
        yield backend, url, reference, folder, name


pytestmark = pytest.mark.slow


def test_ping_and_tf_serving_status(served):
    backend, url, _, _, name = served
    status, ping = request(url, "GET", "/ping")
    assert status == 200 and ping["format"] == FORMATS[backend]
    status, doc = request(url, "GET", f"/v1/models/{name}")
    assert status == 200 and doc["model_version_status"][0] == {
        "version": "1",
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    status, meta = request(url, "GET", f"/v1/models/{name}/metadata")
    contract = meta["contract"]
    assert (contract["raw_dtype"], contract["raw_shape"], contract["scale"]) == ("uint8", [8, 8], 16.0)
    assert contract["backend"] == backend and contract["class_names"] == [str(d) for d in range(10)]


def test_every_route_answers_the_trained_models_probabilities(served):
    """JSON instances, a bare list, .npy and TF Serving's route give the trained model's probabilities
    for the dataset's own uint8 images, whatever the backend's layout."""
    _, url, ref, _, name = served
    raw, trained = ref["raw"], ref["trained"]
    assert raw.dtype == np.uint8 and raw.shape[1:] == (8, 8)
    npy = io.BytesIO()
    np.save(npy, raw)
    answers = [
        post_json(url, "/invocations", {"instances": raw.tolist()}),
        post_json(url, "/invocations", raw.tolist()),
        request(url, "POST", "/invocations", npy.getvalue(), "application/x-npy"),
        post_json(url, f"/v1/models/{name}:predict", {"instances": raw.tolist()}),
        post_json(url, f"/v1/models/{name}:predict", {"inputs": raw[:3].tolist()}),
    ]
    for status, doc in answers:
        assert status == 200, doc
        got = np.asarray(doc["predictions"])
        np.testing.assert_allclose(got, trained[: len(got)], atol=1e-5)
    assert (np.asarray(answers[0][1]["predictions"]).argmax(1) == trained.argmax(1)).all()


def test_mlflow_model_predicts_like_the_trained_model(served):
    _, _, ref, _, _ = served
    np.testing.assert_allclose(ref["pyfunc"], ref["trained"], atol=1e-5)


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(served):
    _, url, ref, _, name = served
    raw, trained = ref["raw"][:48], ref["trained"][:48]
    before = request(url, "GET", "/ping")[1]

    def one(i: int):
        return post_json(url, "/invocations", {"instances": raw[i : i + 1].tolist()})

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(len(raw))))
    for i, (status, doc) in enumerate(answers):
        assert status == 200
        np.testing.assert_allclose(doc["predictions"][0], trained[i], atol=1e-5)
    after = request(url, "GET", "/ping")[1]
    assert after["requests"] - before["requests"] == len(raw)
    assert after["batches"] - before["batches"] < len(raw)  # several requests shared a prediction


def bad_requests(raw: np.ndarray, name: str):
    """(what, method, path, body, content type, expected status, words the error names)."""
    npy_float = io.BytesIO()
    np.save(npy_float, raw[:2].astype(np.float64) + 0.5)
    nan = raw[:1].astype(float).tolist()
    nan[0][0][0] = float("nan")
    big = json.dumps({"instances": np.zeros((LIMIT // 16, 8, 8), np.uint8).tolist()}).encode()
    return [
        (
            "malformed JSON",
            "POST",
            "/invocations",
            b'{"instances": [1,',
            "application/json",
            400,
            "not valid JSON",
        ),
        (
            "wrong shape",
            "POST",
            "/invocations",
            json.dumps([[1, 2, 3]]).encode(),
            "application/json",
            400,
            "(N, 8, 8)",
        ),
        ("ragged", "POST", "/invocations", b"[[[1, 2], [3]]]", "application/json", 400, "regular"),
        (
            "strings",
            "POST",
            "/invocations",
            json.dumps([[["a"] * 8] * 8]).encode(),
            "application/json",
            400,
            "not numbers",
        ),
        (
            "out of range",
            "POST",
            "/invocations",
            json.dumps([[[300] * 8] * 8]).encode(),
            "application/json",
            400,
            "[0, 255]",
        ),
        (
            "fractions",
            "POST",
            "/invocations",
            npy_float.getvalue(),
            "application/x-npy",
            400,
            "whole numbers",
        ),
        ("NaN", "POST", "/invocations", json.dumps(nan).encode(), "application/json", 400, "NaN"),
        ("empty batch", "POST", "/invocations", b'{"instances": []}', "application/json", 400, "empty"),
        ("no instances key", "POST", "/invocations", b'{"data": []}', "application/json", 400, "'instances'"),
        ("bad npy", "POST", "/invocations", b"not numpy", "application/x-npy", 400, ".npy"),
        ("oversized", "POST", "/invocations", big, "application/json", 413, "max_body_bytes"),
        ("wrong content type", "POST", "/invocations", b"1,2,3", "text/csv", 415, "text/csv"),
        (
            "npy on TF route",
            "POST",
            f"/v1/models/{name}:predict",
            b"",
            "application/x-npy",
            415,
            "application/json",
        ),
        ("other model", "POST", "/v1/models/other:predict", b"[]", "application/json", 404, "'other'"),
        ("unknown route", "GET", "/nothing", None, None, 404, "Not Found"),
        ("wrong method", "GET", "/invocations", None, None, 405, "Method Not Allowed"),
    ]


def test_bad_input_gets_a_4xx_with_one_line_and_the_server_goes_on(served):
    _, url, ref, _, name = served
    for what, method, path, body, content_type, expected, words in bad_requests(ref["raw"], name):
        status, doc = request(url, method, path, body, content_type, timeout=30)
        assert status == expected, (what, status, doc)
        assert set(doc) == {"error"} and "\n" not in doc["error"] and words in doc["error"], (what, doc)
    big = json.dumps(ref["raw"].tolist() * 6).encode()
    status, doc = request(url, "POST", "/invocations", big, "application/json", chunked=True)
    assert status == 413 and "max_body_bytes" in doc["error"]  # no Content-Length: the stream is cut
    assert post_json(url, "/invocations", ref["raw"][:1].tolist())[0] == 200


def test_launch_predict_against_the_endpoint_and_the_run(served):
    backend, url, ref, folder, _ = served
    targets = [url] + (
        [str(ref["run_id"])] if backend == "mxnet" else []
    )  # a run id: loaded here from MLflow
    for target in targets:
        proc = launch("predict", target, "--samples", "4", "--seed", "3", "--out", "grid.png", cwd=folder)
        assert proc.returncode == 0, proc.stderr
        lines = [line for line in proc.stdout.splitlines() if " true=" in line]
        assert len(lines) == 4 and all("predicted=" in line for line in lines)
        assert (folder / "grid.png").stat().st_size > 1000
        (folder / "grid.png").unlink()
