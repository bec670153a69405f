"""launch.py serve/predict refuse bad settings and unusable models with one line, before serving anything."""

import json
import sys

import pytest

from kx.serving.contract import Contract
from tests.helpers.serving import launch


def broken_model(folder):
    """A model folder whose contract is fine and whose MXNet files are not."""
    Contract(
        name="model",
        version=1,
        backend="mxnet",
        layout="channels_first",
        input_shape=[1, 8, 8],
        raw_dtype="uint8",
        raw_shape=[8, 8],
        scale=16.0,
        class_names=list("0123456789"),
        files={"mxnet": "model"},
    ).save(folder)
    (folder / "model-symbol.json").write_text("{not a symbol")
    (folder / "model-shapes.json").write_text(json.dumps([{"name": "data", "shape": [1, 1, 8, 8]}]))
    (folder / "model-0000.params").write_bytes(b"garbage")
    return folder


@pytest.mark.parametrize(
    "args, words",
    [
        (["no/such/folder"], "neither a folder nor an MLflow model URI"),
        ([".", "port=abc"], "port"),
        ([".", "port=70000"], "port=70000 is out of range"),
        ([".", "colour=blue"], "colour"),
        ([".", "max_batch"], "key=value"),
        ([".", "format=onnx"], "format=onnx"),
        (["."], "holds no kx model contract"),
    ],
)
def test_bad_serve_arguments_are_one_line(launch_here, args, words):
    proc = launch_here("serve", *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("kx: error: ") and words in proc.stderr


@pytest.mark.slow  # the one `launch.py serve` process: its exit code and one line end to end
@pytest.mark.skipif(sys.version_info < (3, 9), reason="serving runs on the launch machine")
def test_a_model_that_fails_to_load_fails_start_up_with_one_line(tmp_path):
    proc = launch("serve", str(broken_model(tmp_path)), "port=0", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(
        f"kx: error: Cannot load {tmp_path}/model (mxnet)"
    )


def test_predict_needs_at_least_one_sample(launch_here):
    proc = launch_here("predict", "http://127.0.0.1:9", "--samples", "0")
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == "kx: error: --samples=0 is not allowed: give at least 1."
    )
