"""Nothing lands in the user's working folder except under outputs/ (or a path the user gives)."""

import subprocess
import sys
from pathlib import Path

import pytest

from kx.serving.predict import grid_path
from tests.conftest import PROJECT_DIR, train
from tests.helpers.serving import launch


def test_the_prediction_grid_goes_to_the_run_folder_else_under_outputs(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("{}")
    assert grid_path(str(tmp_path / "run")) == tmp_path / "run" / "predictions.png"
    for target in ("http://127.0.0.1:8080", "0123456789abcdef", "kx-digits", str(tmp_path / "run" / "model")):
        assert grid_path(target) == Path("outputs") / "predictions.png"


@pytest.mark.slow
def test_make_data_writes_under_outputs_or_the_folder_given(tmp_path):
    script = str(PROJECT_DIR / "examples" / "make_data.py")
    subprocess.run([sys.executable, script], cwd=tmp_path, check=True, capture_output=True)
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]
    assert (tmp_path / "outputs" / "shapes.npz").is_file()
    assert len(list((tmp_path / "outputs" / "pictures").glob("*/*.png"))) == 900
    subprocess.run([sys.executable, script, "--out", "data"], cwd=tmp_path, check=True, capture_output=True)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["pictures", "shapes.npz"]


@pytest.mark.slow
def test_predict_on_a_run_folder_writes_its_grid_there(tmp_path):
    run = ["model=mlp", "dataset=digits", "train.epochs=1", "tracking.enabled=false", "hydra.run.dir=run"]
    assert train(tmp_path, *run).returncode == 0
    proc = launch("predict", "run", "--samples", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "predictions.png").stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
