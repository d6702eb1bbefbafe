"""Headless Chromium for the page tests (Debian's chromium and chromium-driver, as CI installs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@contextmanager
def headless_chromium(profile_dir: Path, *, log_traffic: bool = False) -> Iterator[Any]:
    """A Selenium driver (skips the test when Chromium is not installed); ``log_traffic``: keep
    the console and the network log, for tests that check what a page loads."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not found: `apt-get install chromium chromium-driver` "
            "(Debian) to run the browser check"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # with Service's path: Selenium Manager never runs
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--window-size=1280,900",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(argument)
    if log_traffic:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
