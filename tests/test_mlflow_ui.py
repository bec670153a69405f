"""MLflow's UI in a real browser, as a user opens it after a sweep: ``launch.py ui``, then Chromium.

Screenshots of every page land in ``$KX_TEST_ARTIFACTS/mlflow_ui`` (else the test's temporary
folder); the test prints where.
"""

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from tests.conftest import PROJECT_DIR, train
from tests.helpers.browser import chromium, requested_hosts, wait_until

pytestmark = pytest.mark.slow

TRIALS = 2
SWEEP = ["-m", "sweep=quick", "backend=torch", "dataset=digits", "model=mlp", "train.epochs=1",
         f"sweep.budget.trials={TRIALS}"]  # fmt: skip


@contextmanager
def launch_ui(folder: Path) -> Iterator[Dict[str, str]]:
    """``launch.py ui`` on ``folder``'s store: the links it prints, by label; stopped by its PID."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI" and not k.startswith("KX_")}
    log = (folder / "ui.log").open("w")
    proc = subprocess.Popen([sys.executable, str(PROJECT_DIR / "launch.py"), "ui",
                             f"tracking.uri=sqlite:///{folder / 'mlflow.db'}"], cwd=folder,
                            env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=log, text=True)  # fmt: skip
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


def test_a_sweep_its_trials_and_their_parallel_coordinates_in_mlflows_ui(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    proc = train(tmp_path, *SWEEP)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shots, hosts = screenshots(tmp_path), set()
    with launch_ui(tmp_path) as links, chromium() as browser:
        base = links["MLflow UI"].split("/#/")[0]
        assert (
            base.startswith("http://127.0.0.1:") and "?workflowType=machine_learning" in links["latest sweep"]
        )

        # the experiment's runs: the sweep's parent, its trials named after their parameters
        browser.get(links["MLflow UI"])
        parent = wait_until(browser, lambda d: d.find_elements(By.LINK_TEXT, "sweep quick"))[0]
        close_assistant(browser)
        parent.find_element(By.XPATH, "./ancestor::*[@role='gridcell'][1]//button").click()  # its trials
        body = lambda d: d.find_element(By.TAG_NAME, "body").text  # noqa: E731
        wait_until(browser, lambda d: all(f"trial {n}: learning_rate=" in body(d) for n in range(TRIALS)))
        browser.save_screenshot(str(shots / "1-experiment-runs.png"))

        # the parent: its description links to the trials side by side
        browser.get(links["latest sweep"])
        compare = wait_until(
            browser, lambda d: d.find_elements(By.LINK_TEXT, f"Compare the {TRIALS} trials side by side")
        )
        assert (
            f"Sweep of {TRIALS} trials ({TRIALS} complete), objective val_acc (maximize); best: trial"
            in body(browser)
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
    assert hosts == {base}, hosts  # Chromium asked nothing of any other address
