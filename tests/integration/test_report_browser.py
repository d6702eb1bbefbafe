"""The comparison page in a real browser (Debian's headless Chromium, offline): the leaderboard
table is laid out and visible, and every embedded picture decodes and paints."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageStat

from genlab.reporting import build_report

from ..unit.test_report import GRID_SIZES, write_project

pytestmark = pytest.mark.timeout(120)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture
def browser(tmp_path):
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
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_table_and_every_image_render_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    leaderboard, runs, metrics = write_project(tmp_path)
    page = build_report(leaderboard, runs, tmp_path / "report.html", metrics_dir=metrics)
    browser.get(page.as_uri())

    rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
    names = [row.find_elements(By.TAG_NAME, "td")[1].text for row in rows]
    assert names == ["stylegan", "vae", "dcgan", "floor (real vs real)"]
    for row in rows:
        assert row.is_displayed() and row.size["height"] > 0 and row.size["width"] > 0

    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return [...document.images].every(i => i.complete)")
    )
    images = browser.execute_script(
        "return [...document.images].map(i => ({alt: i.alt, complete: i.complete, "
        "width: i.naturalWidth, height: i.naturalHeight, shown: i.getBoundingClientRect().width}))"
    )
    assert len(images) == 9
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image["alt"]
        assert image["shown"] > 0, f"laid out with no width: {image['alt']}"
    grids = {
        i["alt"].split(" (run")[0].split()[-1]: i for i in images if "samples grid" in i["alt"]
    }
    assert {m: (g["width"], g["height"]) for m, g in grids.items()} == GRID_SIZES

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height + 150)
    screenshot = tmp_path / "report.png"
    assert browser.save_screenshot(str(screenshot))
    with Image.open(screenshot) as shot:
        assert shot.format == "PNG" and shot.width >= 1000
        gray = shot.convert("L")
        assert ImageStat.Stat(gray).stddev[0] > 10, "the screenshot is blank"
        assert len(gray.getcolors(maxcolors=256) or range(257)) > 16
