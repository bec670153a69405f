"""Debian's headless Chromium driven by Selenium, held to 127.0.0.1, with every request it sends on record.

The test process's network guard (tests/netguard) covers Python only; Chromium gets its own fence:
every host name but 127.0.0.1 resolves to nothing, every request that is not to a loopback
address goes to a proxy on a closed loopback port, and Chromium's own background traffic (updates,
safe browsing, metrics) is off. The page's requests are read back from Chromium's performance log
so that a test can assert they all stayed on 127.0.0.1.
"""

import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, List, Set
from urllib.parse import urlsplit

import pytest

CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver; Selenium Manager would download one
FENCE = [
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",  # the discard port, closed: loopback itself bypasses proxies
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--no-pings",
    "--no-first-run",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
]
LOCAL_SCHEMES = ("blob", "data", "about", "chrome", "devtools")


@contextmanager
def chromium(width: int = 1920, height: int = 1200) -> Iterator[Any]:
    """A headless Chromium session (skips the test where Chromium or its driver is missing)."""
    if not shutil.which("chromium") or not Path(CHROMEDRIVER).exists():
        pytest.skip("apt-get install chromium chromium-driver")
    pytest.importorskip("selenium", reason="pip install -e '.[dev]'")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        f"--window-size={width},{height}",
        *FENCE,
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def requested_hosts(driver: Any) -> Set[str]:
    """Where the current tab asked for anything since the last call: ``scheme://host:port``."""
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = urlsplit(message["params"]["request"]["url"])
            if url.scheme not in LOCAL_SCHEMES:
                hosts.add(f"{url.scheme}://{url.netloc}")
    return hosts


def wait_until(driver: Any, found: Callable[[Any], Any], timeout: float = 90.0) -> Any:
    """Wait for ``found(driver)`` to be truthy (a single-page app renders after the page loads)."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    while True:
        try:
            result = found(driver)
        except WebDriverException:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out on {driver.current_url}:\n{driver.find_element('tag name', 'body').text[:2000]}"
            )
        time.sleep(0.5)


def texts(driver: Any, xpath: str) -> List[str]:
    return [e.text for e in driver.find_elements("xpath", xpath)]
