"""MLflow's UI in a real browser, as a user opens it after a sweep, a local run and its SageMaker
twin (a rehearsal): ``launch.py ui``, then Chromium.

Screenshots of every page land in ``$KX_TEST_ARTIFACTS/mlflow_ui`` (else the test's temporary
folder); the test prints where.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from kx.tracking.links import compare_link
from tests.conftest import PROJECT_DIR, train
from tests.helpers.browser import chromium, requested_hosts, wait_until
from tests.helpers.moto import launch

pytestmark = pytest.mark.slow

TRIALS = 2
PAIR = ["dataset=digits", "model=mlp", "train.epochs=1"]  # tensorflow: a SageMaker framework image's
SWEEP = [
    "-m",
    "sweep=quick",
    "backend=torch",
    "dataset=digits",
    "model=mlp",
    "train.epochs=1",
    f"sweep.budget.trials={TRIALS}",
]


@contextmanager
def launch_ui(folder: Path) -> Iterator[Dict[str, str]]:
    """``launch.py ui`` on ``folder``'s store: the links it prints, by label; stopped by its PID."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI" and not k.startswith("KX_")}
    log = (folder / "ui.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_DIR / "launch.py"),
            "ui",
            f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
        ],
        cwd=folder,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    links: Dict[str, str] = {}
    try:
        for line in proc.stdout:
            if line.startswith("serving "):
                break
            label, _, url = line.strip().partition(": ")
            links[label.split(" (")[0]] = url
        assert proc.poll() is None, (folder / "ui.log").read_text()[-3000:]
        yield links
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        log.close()
    assert "net_guard: blocked" not in (folder / "ui.log").read_text()
    port = int(links["MLflow UI"].split("/#/")[0].rsplit(":", 1)[1])
    with pytest.raises(OSError):  # launch.py stopped the server it started
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def close_assistant(browser: Any) -> None:
    """Close MLflow's assistant pane (it takes a third of the window; the browser remembers it)."""
    for button in browser.find_elements(
        "css selector", '[data-component-id="mlflow.assistant.chat_panel.close"]'
    ):
        button.click()


def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("KX_TEST_ARTIFACTS", tmp_path)) / "mlflow_ui"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory, mlflow_template) -> Path:
    """One experiment with a sweep, a local run and the same run as a rehearsed SageMaker job."""
    folder = tmp_path_factory.mktemp("mlflow_ui")
    shutil.copy(mlflow_template, folder / "mlflow.db")  # the store the sweep would create first
    proc = train(folder, *SWEEP)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = train(folder, *PAIR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = launch(folder, "target=sagemaker_local", *PAIR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def ui(store: Path) -> Iterator[Dict[str, str]]:
    with launch_ui(store) as links:
        yield links


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Asked for first: a machine without Chromium skips before anything is trained."""
    with chromium() as driver:
        yield driver


def body(driver: Any) -> str:
    return driver.find_element("tag name", "body").text


def test_a_sweep_its_trials_and_their_parallel_coordinates_in_mlflows_ui(browser, ui, store):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    links, shots, hosts = ui, screenshots(store), set()
    base = links["MLflow UI"].split("/#/")[0]
    assert base.startswith("http://127.0.0.1:") and "?workflowType=machine_learning" in links["latest sweep"]

    # the experiment's runs: the sweep's parent, its trials named after their parameters
    browser.get(links["MLflow UI"])
    parent = wait_until(browser, lambda d: d.find_elements(By.LINK_TEXT, "sweep quick"))[0]
    close_assistant(browser)
    parent.find_element(By.XPATH, "./ancestor::*[@role='gridcell'][1]//button").click()  # its trials
    wait_until(browser, lambda d: all(f"trial {n}: learning_rate=" in body(d) for n in range(TRIALS)))
    browser.save_screenshot(str(shots / "1-experiment-runs.png"))

    # the parent: its description links to the trials side by side
    browser.get(links["latest sweep"])
    compare = wait_until(
        browser, lambda d: d.find_elements(By.LINK_TEXT, f"Compare the {TRIALS} trials side by side")
    )
    assert f"Sweep of {TRIALS} trials ({TRIALS} complete), objective val_acc (maximize); best: trial" in body(
        browser
    )
    browser.save_screenshot(str(shots / "2-sweep-parent.png"))
    hosts |= requested_hosts(browser)
    compare[0].click()  # in a new tab
    browser.switch_to.window(browser.window_handles[-1])
    wait_until(browser, lambda d: f"Comparing {TRIALS} Runs" in body(d))
    assert all(f"trial {n}: learning_rate=" in body(browser) for n in range(TRIALS))
    browser.save_screenshot(str(shots / "3-trials-compared.png"))

    # the parallel-coordinates page in MLflow's artifact viewer: every trial, every axis
    browser.get(links["latest sweep"])
    page = wait_until(browser, lambda d: d.find_elements(By.PARTIAL_LINK_TEXT, "Every trial over every"))
    hosts |= requested_hosts(browser)
    page[0].click()  # in a new tab
    browser.switch_to.window(browser.window_handles[-1])
    frame = wait_until(browser, lambda d: d.find_elements(By.TAG_NAME, "iframe"))[0]
    browser.switch_to.frame(frame)
    lines = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "path.trial"))
    assert sorted(line.get_attribute("data-trial") for line in lines) == [str(n) for n in range(TRIALS)]
    axes = [a.get_attribute("data-key") for a in browser.find_elements(By.CSS_SELECTOR, "g.axis")]
    assert axes == ["model.dense_units", "model.dropout", "train.learning_rate", "val_acc"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr[data-trial]")) == TRIALS
    ActionChains(browser).move_to_element(
        browser.find_element(By.CSS_SELECTOR, 'tr[data-trial="0"]')
    ).perform()
    picked = browser.find_element(By.CSS_SELECTOR, 'path.trial[data-trial="0"]')
    wait_until(browser, lambda d: "on" in picked.get_attribute("class").split())  # the script runs
    browser.switch_to.default_content()
    browser.save_screenshot(str(shots / "4-parallel-coordinates.png"))
    hosts |= requested_hosts(browser)
    hosts |= requested_hosts(browser)
    assert hosts == {base}, hosts  # Chromium asked nothing of any other address


def test_a_local_run_and_its_sagemaker_twin_line_up_in_mlflows_comparison(browser, ui, store):
    from mlflow.tracking import MlflowClient
    from selenium.webdriver.common.by import By

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kx").experiment_id
    found = client.search_runs(
        [experiment], filter_string="tags.`kx.sweep.study` IS NULL AND tags.`kx.sweep` IS NULL"
    )
    pair = {r.data.tags["kx.target"]: r for r in found}
    assert sorted(pair) == ["local", "sagemaker_local"], [r.info.run_name for r in found]
    local, job = pair["local"], pair["sagemaker_local"]
    assert local.info.run_name == "tensorflow mlp digits epochs=1"
    assert job.info.run_name == "tensorflow mlp digits epochs=1 on sagemaker_local"
    assert job.data.params == local.data.params  # column for column, value for value
    assert set(job.data.metrics) == set(local.data.metrics)

    base = ui["MLflow UI"].split("/#/")[0]
    browser.switch_to.window(browser.window_handles[0])
    browser.get(f"{base}/{compare_link(experiment, [local.info.run_id, job.info.run_id])}")
    wait_until(browser, lambda d: "Comparing 2 Runs" in body(d))
    assert local.info.run_name in body(browser) and job.info.run_name in body(browser)
    heading = browser.find_element(By.XPATH, "//*[normalize-space(text())='Run details']")
    browser.set_window_size(1920, 2400)  # names, times, then params and metrics side by side in one shot
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", heading)
    browser.save_screenshot(str(screenshots(store) / "5-local-vs-sagemaker.png"))
    browser.set_window_size(1920, 1200)
    assert requested_hosts(browser) <= {base}
