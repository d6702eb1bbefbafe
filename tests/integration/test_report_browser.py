"""The comparison page in a real browser (Debian's headless Chromium, offline): the leaderboard
table (with its intervals, precision / recall / density / coverage, FID_inf, KID's scale in its
header and the sentence on ties) is laid out and visible, the table over three seeds and every
run's W&B id (a link for the synced one) are shown, the training curves paint a smoothed line
over a faint raw one, every embedded picture, the sample-count plots included, decodes and
paints, and each model's per-class table (its worst class marked) and class grid are shown."""

from __future__ import annotations

import re

import pytest
from PIL import Image, ImageStat

from genlab.io import write_json
from genlab.layout import class_grid, run_name
from genlab.reporting import build_report
from genlab.reporting.report import CURVE_COLOR, RAW_ALPHA

from ..support.browser import headless_chromium
from ..unit.test_report import GRID_SIZES, png, write_project
from ..unit.test_report_per_class import CLASS_GRID_SIZES
from ..unit.test_report_per_class import CLASSES as PER_CLASS_NAMES
from ..unit.test_report_per_class import results as per_class_results

SEEDS = (0, 1, 2)
SYNCED_URL = "https://wandb.ai/team/genlab/runs/bbbb0002"
# the pixels of each curve figure near the curve colour and near it at RAW_ALPHA over white,
# read back from the painted image through a canvas
CURVE_PIXELS_JS = """
const [solid, faint] = arguments;
return [...document.images].filter(i => i.alt.startsWith('training curves')).map(i => {
  const c = document.createElement('canvas');
  c.width = i.naturalWidth; c.height = i.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(i, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const near = (k, t) => Math.max(...[0, 1, 2].map(j => Math.abs(d[k + j] - t[j]))) <= 6;
  let s = 0, f = 0;
  for (let k = 0; k < d.length; k += 4) { if (near(k, solid)) s++; if (near(k, faint)) f++; }
  return [s, f];
});
"""

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def browser(tmp_path):
    with headless_chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def test_table_and_every_image_render_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    leaderboard, runs, metrics = write_project(tmp_path, seeds=SEEDS)
    write_json(
        runs / run_name("vae", 2) / "train_summary.json", {"links": {"wandb_url": SYNCED_URL}}
    )
    page = build_report(leaderboard, runs, tmp_path / "report.html", metrics_dir=metrics)
    browser.get(page.as_uri())

    header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#leaderboard thead th")]
    for column in ("FID", "KID x 1", "precision", "recall", "density", "coverage", "FID_inf"):
        assert column in header, column
    assert "KID" not in header, "KID's header states its scale"
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

    seed_header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#seeds thead th")]
    assert seed_header[:3] == ["rank", "model", "seeds"] and "KID x 1" in seed_header
    seed_rows = browser.find_elements(By.CSS_SELECTOR, "#seeds tbody tr")
    seed_cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in seed_rows]
    assert [c[1] for c in seed_cells] == ["stylegan", "vae", "dcgan"]
    kid = seed_header.index("KID x 1")
    for row, cells in zip(seed_rows, seed_cells, strict=True):
        assert row.is_displayed() and row.size["height"] > 0
        assert cells[2] == "0, 1, 2"
        assert re.fullmatch(r"\S+ ± \S+ \(n=3\)", cells[kid]), cells[kid]
    (seed_note,) = browser.find_elements(By.CSS_SELECTOR, "p.seed-ties")
    assert "min..max" in seed_note.text and seed_note.is_displayed()

    wandb = browser.find_elements(By.CSS_SELECTOR, "#runs td.wandb")
    assert len(wandb) == len(GRID_SIZES) * len(SEEDS)
    assert all(cell.is_displayed() and cell.size["width"] > 0 for cell in wandb)
    (link,) = browser.find_elements(By.CSS_SELECTOR, "#runs td.wandb a")
    assert link.get_attribute("href") == SYNCED_URL and link.text == "bbbb0002"
    assert link.is_displayed() and link.size["width"] > 0
    assert sum("(not synced)" in cell.text for cell in wandb) == len(wandb) - 1
    assert any(cell.text.startswith("aaaa1111") for cell in wandb), "dcgan seed 0's W&B id"

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

    solid = [int(CURVE_COLOR[i : i + 2], 16) for i in (1, 3, 5)]
    faint = [round(RAW_ALPHA * c + (1 - RAW_ALPHA) * 255) for c in solid]
    painted = browser.execute_script(CURVE_PIXELS_JS, solid, faint)
    assert len(painted) == 2, "dcgan's and vae's curves"
    for smoothed, raw in painted:
        # the solid line's antialiased edges alone give ~100 faint pixels; the raw line ~650
        assert smoothed > 300 and raw > 300, (smoothed, raw)

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height + 150)
    screenshot = tmp_path / "report.png"
    assert browser.save_screenshot(str(screenshot))
    with Image.open(screenshot) as shot:
        assert shot.format == "PNG" and shot.width >= 1000
        gray = shot.convert("L")
        assert ImageStat.Stat(gray).stddev[0] > 10, "the screenshot is blank"
        assert len(gray.getcolors(maxcolors=256) or range(257)) > 16


def test_per_class_tables_and_class_grids_render_in_chromium(browser, tmp_path):
    """Each model's per-class table is laid out with its worst class's row marked, the
    side-by-side comparison is shown, and each class grid decodes and paints at its size."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    leaderboard, runs, metrics = write_project(tmp_path, per_class_results())
    for model, size in CLASS_GRID_SIZES.items():
        png(class_grid(metrics, run_name(model, 0)), size, 150)
    page = build_report(leaderboard, runs, tmp_path / "report.html", metrics_dir=metrics)
    browser.get(page.as_uri())

    for model in GRID_SIZES:
        table = browser.find_element(By.CSS_SELECTOR, f'table.per-class[data-model="{model}"]')
        assert table.is_displayed() and table.size["height"] > 0
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == PER_CLASS_NAMES
        (worst,) = table.find_elements(By.CSS_SELECTOR, "tbody tr.worst")
        assert worst.is_displayed() and worst.text.endswith("worst")
        shade = worst.value_of_css_property("background-color")
        (plain, *_) = [r for r in rows if "worst" not in (r.get_attribute("class") or "")]
        assert shade != plain.value_of_css_property("background-color"), "marked, not only said"
    compared = browser.find_element(By.ID, "per-class-compare")
    assert compared.is_displayed()
    assert len(compared.find_elements(By.CSS_SELECTOR, "tbody tr")) == len(PER_CLASS_NAMES)

    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return [...document.images].every(i => i.complete)")
    )
    grids = browser.execute_script(
        "return [...document.images].filter(i => i.alt.startsWith('class grid')).map(i => "
        "({alt: i.alt, width: i.naturalWidth, height: i.naturalHeight, "
        "shown: i.getBoundingClientRect().width}))"
    )
    sizes = {g["alt"].split(":")[0].split()[-1]: (g["width"], g["height"]) for g in grids}
    assert sizes == CLASS_GRID_SIZES
    assert all(g["shown"] > 0 for g in grids), grids
