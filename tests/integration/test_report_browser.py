"""The comparison page in a real browser (Debian's headless Chromium, offline): the leaderboard
table (with its intervals, precision / recall / density / coverage, FID_inf and the sentence on
ties) is laid out and visible, and every embedded picture, the sample-count plots included,
decodes and paints."""

from __future__ import annotations

import re

import pytest
from PIL import Image, ImageStat

from genlab.reporting import build_report

from ..support.browser import headless_chromium
from ..unit.test_report import GRID_SIZES, write_project

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def browser(tmp_path):
    with headless_chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def test_table_and_every_image_render_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    leaderboard, runs, metrics = write_project(tmp_path)
    page = build_report(leaderboard, runs, tmp_path / "report.html", metrics_dir=metrics)
    browser.get(page.as_uri())

    header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#leaderboard thead th")]
    for column in ("FID", "KID", "precision", "recall", "density", "coverage", "FID_inf"):
        assert column in header, column
    rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
    cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [c[1] for c in cells] == ["stylegan", "vae", "dcgan", "floor (real vs real)"]
    assert [c[0] for c in cells] == ["=1", "=1", "3", ""], "stylegan and vae tie on KID"
    fid, coverage = header.index("FID"), header.index("coverage")
    for row_cells in cells:  # the floor row too: every model's numbers beside the floor's
        assert re.fullmatch(r"\S+ \[\S+, \S+\]", row_cells[fid]), row_cells[fid]
        assert re.fullmatch(r"\S+ \[\S+, \S+\]", row_cells[coverage]), row_cells[coverage]
    for row in rows:
        assert row.is_displayed() and row.size["height"] > 0 and row.size["width"] > 0
    ties = [p.text for p in browser.find_elements(By.CSS_SELECTOR, "p.ties")]
    (sentence,) = [t for t in ties if "not distinguishable at these sample counts" in t.lower()]
    assert "stylegan and vae" in sentence
    shown = browser.find_element(By.CSS_SELECTOR, "p.ties")
    assert shown.is_displayed() and shown.size["height"] > 0

    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return [...document.images].every(i => i.complete)")
    )
    images = browser.execute_script(
        "return [...document.images].map(i => ({alt: i.alt, complete: i.complete, "
        "width: i.naturalWidth, height: i.naturalHeight, shown: i.getBoundingClientRect().width}))"
    )
    assert len(images) == 12
    counts = [i for i in images if i["alt"].startswith("FID and KID of")]
    assert len(counts) == len(GRID_SIZES), "a sample-count plot per model"
    assert all(i["width"] > 300 and i["shown"] > 0 for i in counts)
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
