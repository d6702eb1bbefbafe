"""The page of every run, for a real search, in a real browser (Debian's headless Chromium,
offline): an Optuna grid search of 5 tiny trials over the learning rate, one of which diverges,
read back by collect_runs and drawn by write_runs_page. The table holds the 5 trials, the failed
one with its reason, one best run (the lowest objective the search recorded), and the sweep's
chart decodes; nothing is fetched and nothing goes to the console."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genlab.layout import RUNS_PAGE, SWEEP_SUMMARY_FILE
from genlab.reporting.leaderboard import format_number
from genlab.reporting.runs import collect_runs
from genlab.reporting.runs_page import RUNS_COLUMNS, write_runs_page

from ..conftest import PROJECT_ROOT, tiny_model_overrides
from ..support.browser import headless_chromium
from ..support.training import train_quick_classifier

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# four that train, the last one diverges (loss NaN): a failed trial; >1.5 decades: a log axis
LEARNING_RATES = ("1e-4", "3e-4", "1e-3", "1e-2", "1e30")


@pytest.fixture
def browser(tmp_path):
    """As in test_report_browser.py, with the console and the network logged."""
    with headless_chromium(tmp_path / "chromium-profile", log_traffic=True) as driver:
        yield driver


def _search(workspace: Path, digits_dir: Path, classifier: Path) -> Path:
    sweep_dir = workspace / "multirun" / "search" / "lr"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "pipelines/train.py"),
            "-m",
            "search=optuna",
            "hydra/sweeper/sampler=grid",  # every value once, in the sampler's order
            f"hydra.sweeper.n_trials={len(LEARNING_RATES)}",
            f"model.optim.lr=choice({','.join(LEARNING_RATES)})",
            f"data.dir={digits_dir}",
            f"paths.classifier={classifier}",
            f"paths.cache_dir={workspace / 'cache'}",
            f"hydra.sweep.dir={sweep_dir}",
            "logger=csv",
            "train.steps=8",
            "train.sample_every_n_steps=8",
            "train.objective.num_samples=100",
            "data.batch_size=16",
            *tiny_model_overrides("dcgan"),
        ],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert f"4 of {len(LEARNING_RATES)} jobs succeeded" in result.stdout, (
        result.stdout[-3000:] + result.stderr[-3000:]
    )
    return sweep_dir


def test_a_real_search_on_the_runs_page_in_chromium(browser, tmp_path, digits_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    sweep_dir = _search(workspace, digits_dir, train_quick_classifier(tmp_path, digits_dir))
    rows = collect_runs(workspace, experiments=False)
    page = write_runs_page(rows, workspace / RUNS_PAGE)
    browser.get_log("browser")  # start from an empty console and network log
    browser.get_log("performance")
    browser.get(page.as_uri())

    # what the search itself recorded: the trial to find marked, from a file the page never read
    summary = json.loads((sweep_dir / SWEEP_SUMMARY_FILE).read_text())
    finished = [job for job in summary["jobs"] if job["status"] == "ok"]
    lowest = min(finished, key=lambda job: job["objective"]["value"])

    column = {name: index for index, name in enumerate(RUNS_COLUMNS)}
    table = browser.find_elements(By.CSS_SELECTOR, "table#runs tbody tr")
    assert len(table) == len(LEARNING_RATES)
    cells = {
        row.get_attribute("data-job"): [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        for row in table
    }
    assert len(cells) == len(LEARNING_RATES), "one row per trial, none twice"
    (failed,) = browser.find_elements(By.CSS_SELECTOR, "table#runs tr.failed")
    status = failed.find_element(By.CSS_SELECTOR, "td.status").text
    assert status.startswith("failed") and "became nan" in status, status
    assert "1e+30" in failed.find_element(By.CSS_SELECTOR, "td.overrides").text

    (best,) = browser.find_elements(By.CSS_SELECTOR, "table#runs tr.best")
    assert best.get_attribute("data-job") == str(lowest["job"])
    assert best.is_displayed() and "\u2605" in best.find_element(By.CSS_SELECTOR, "td.name").text
    for job in finished:  # every trial's objective as the search recorded it
        shown = cells[str(job["job"])][column["objective"]]
        assert shown == f"kid_mean {format_number(job['objective']['value'])}", shown

    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return [...document.images].every(i => i.complete)")
    )
    charts = browser.execute_script(
        "return [...document.querySelectorAll('figure.sweep-chart img')].map(i => ({alt: i.alt, "
        "width: i.naturalWidth, height: i.naturalHeight, shown: i.getBoundingClientRect().width}))"
    )
    assert len(charts) == 1, "one sweep, one chart"
    (chart,) = charts
    assert chart["width"] > 300 and chart["height"] > 200 and chart["shown"] > 0
    assert "model.optim.lr" in chart["alt"] and f"#{lowest['job']}" in chart["alt"]

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors
    sent = [
        message["params"]
        for entry in browser.get_log("performance")
        if (message := json.loads(entry["message"])["message"])["method"]
        == "Network.requestWillBeSent"
    ]
    requested = [
        params["request"]["url"] for params in sent if params.get("documentURL") == page.as_uri()
    ]
    assert page.as_uri() in requested, "the log sees the page's requests"
    assert [url for url in requested if not url.startswith(("file:", "data:"))] == []
    assert not [p for p in sent if p["request"]["url"].startswith(("http:", "https:", "ws"))]
