"""The offline comparison page: table rows, embedded PNGs of the right size, no network
references, and a note (not a crash) where a run's files are missing."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import statistics
from html.parser import HTMLParser
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from genlab.errors import StageInputError
from genlab.io import write_json
from genlab.layout import RunLayout, metrics_file, nearest_training_image, run_name
from genlab.reporting import build_report
from genlab.reporting.curves import DEFAULT_SMOOTHING, smooth
from genlab.reporting.leaderboard import better_sentence
from genlab.reporting.report import CURVE_COLOR, RAW_ALPHA, curves_png, read_curves
from genlab.stages.compare import run_compare
from genlab.stages.report import run_report

SCORES = {"dcgan": 140.0, "vae": 60.0, "stylegan": 38.0}
RUN_IDS = {"dcgan": "aaaa1111", "vae": "bbbb2222", "stylegan": "cccc3333"}
# the latest grid of each model, a distinct size per model so a mix-up shows
GRID_SIZES = {"dcgan": (40, 40), "vae": (44, 44), "stylegan": (48, 48)}
RECONSTRUCTION_SIZE = (52, 52)
NEAREST_SIZE = (60, 30)
GAN_CSV = """epoch,health/mode_collapse,step,train/d_real_accuracy,train/loss_d,train/loss_g
0,,9,1.0,0.07,3.9
0,,19,0.9,,4.6
1,0,29,0.8,0.04,4.9
"""
VAE_CSV = """epoch,step,train/kl,train/loss,train/neg_elbo_bits_per_dim
0,9,219.2,555.9,1.08
0,19,,470.5,
1,29,68.1,416.5,0.67
"""


def png(path: Path, size: tuple[int, int], shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, shade).save(path)


# intervals +- 30% of each score: stylegan's and vae's KID overlap, dcgan's stands apart
SPREAD = 0.3
SAMPLE_COUNTS = [250, 500, 1000]
VERSIONS = {"torch": "2.13.0", "torch-fidelity": "0.4.0", "torchvision": "0.28.0"}


def interval(value: float) -> dict[str, float]:
    low, high = sorted((value * (1 - SPREAD), value * (1 + SPREAD)))
    return {"low": low, "high": high, "std": abs(value) * SPREAD / 2}


def curve(final_fid: float, final_kid: float) -> dict:
    """FID / KID falling towards their value at the largest count, as FID does with N."""
    return {
        "counts": SAMPLE_COUNTS,
        "fid": [final_fid * (1 + 100 / n) for n in SAMPLE_COUNTS],
        "kid_mean": [final_kid * (1 + 50 / n) for n in SAMPLE_COUNTS],
        "fid_inf": final_fid * 0.95,
        "draws": 3,
        "skipped": [],
    }


def metrics_result(model: str) -> dict:
    fid = SCORES[model]
    floor = {"fid": 3.65, "kid_mean": -26.6, "kid_std": 13.6, "isc_mean": 9.3, "isc_std": 0.1}
    manifold = {"precision": 0.5, "recall": 0.4, "density": 0.3, "coverage": 0.35}
    floor_manifold = {"precision": 0.93, "recall": 0.9, "density": 1.04, "coverage": 0.99}
    return {
        "extractor": "classifier",
        "fid": fid,
        "kid_mean": fid * 5,
        "kid_std": 20.0,
        "isc_mean": 5.0,
        "isc_std": 0.2,
        **manifold,
        "fid_inf": fid * 0.95,
        "intervals": {
            k: interval(v) for k, v in {"fid": fid, "kid_mean": fid * 5, **manifold}.items()
        },
        "floor": {
            **floor,
            **floor_manifold,
            "fid_inf": 2.0,
            "intervals": {
                k: interval(floor_manifold[k] if k in floor_manifold else floor[k])
                for k in ("fid", "kid_mean", *floor_manifold)
            },
        },
        "sample_counts": {"model": curve(fid, fid * 5), "floor": curve(3.65, -26.6)},
        "comparability": {
            "extractor": "classifier",
            "weights_sha256": "222af0793797" + "0" * 52,
            "weights_known": None,
            "input": {"filter": "bilinear", "size": 32},
            "reference": {"split": "test", "size": 360},
            "floor_samples": {"split": "train", "size": 1437},
            "samples": 1000,
            "bootstrap": {"rounds": 200, "level": 0.95, "seed": 0},
            "versions": VERSIONS,
        },
        "untrained": {"fid": 1300.0, "kid_mean": 3400.0},
        "memorization": {
            "feature": {"fraction_below_threshold": 0.002},
            "pixel": {"fraction_below_threshold": 0.0},
            "expected_fraction_for_real_data": 0.05,
        },
        "run_id": RUN_IDS[model],
        "train_steps": 20,
        "train_images_per_s": 1000.0,
    }


def seed_result(record: dict, model: str, seed: int) -> dict:
    """The metrics record of another seed's run: its FID and KID moved by SEED_STEPS[seed]
    (times the score), its own run name and run id."""
    factor = 1 + SEED_STEPS[seed]
    other = json.loads(json.dumps(record))
    for key in ("fid", "kid_mean"):
        if isinstance(other.get(key), (int, float)):
            other[key] = record[key] * factor
    other.update(model=model, seed=seed, run_name=run_name(model, seed))
    if seed:
        other["run_id"] = f"{record['run_id'][:4]}{seed:04d}"
    return other


# each seed's FID / KID relative to seed 0's: stylegan's (38 x 5) and vae's (60 x 5) KID ranges
# [190, 209] and [300, 330] stay apart, as do dcgan's
SEED_STEPS = {0: 0.0, 1: 0.1, 2: -0.05}


def write_project(
    root: Path, results: dict[str, dict] | None = None, seeds: tuple[int, ...] = (0,)
) -> tuple[Path, Path, Path]:
    """leaderboard.json (by the compare stage), runs/ and metrics/ as a finished `dvc repro`
    leaves them, a run per model and seed (``results``: each model's first seed's record);
    stylegan trained without the CSV logger (no metrics.csv). Pictures and curves are the
    first seed's run's (later seeds' runs have none: the page shows the first seed's)."""
    results = results or {m: metrics_result(m) for m in SCORES}
    runs, metrics = root / "runs", root / "metrics"
    for model, record in results.items():
        for seed in seeds:
            path = metrics_file(metrics, run_name(model, seed))
            write_json(path, seed_result(record, model, seed))
    cfg = OmegaConf.create(
        {
            "paths": {"metrics_dir": str(metrics)},
            "compare": {
                "models": list(results),
                "seeds": list(seeds),
                "params_file": str(root / "no-params.yaml"),
                "out_dir": str(root / "leaderboard"),
                "rank_by": "kid_mean",
            },
        }
    )
    run_compare(cfg)
    first = {model: run_name(model, seeds[0]) for model in SCORES}
    run = {model: RunLayout.at(runs / name) for model, name in first.items()}
    for model, size in GRID_SIZES.items():
        png(run[model].sample_grid(10), (20, 20), 40)  # older: not shown
        png(run[model].sample_grid(20), size, 200)
        png(nearest_training_image(metrics, first[model]), NEAREST_SIZE, 120)
    png(run["vae"].reconstruction_grid(20), RECONSTRUCTION_SIZE, 90)
    for model, csv_text in (("dcgan", GAN_CSV), ("vae", VAE_CSV)):
        run[model].metrics_csv.parent.mkdir(parents=True)
        run[model].metrics_csv.write_text(csv_text)
    return root / "leaderboard" / "leaderboard.json", runs, metrics


class PageParser(HTMLParser):
    """The page's images and the text of each leaderboard row."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.rows: list[list[str]] = []
        self._in_table = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes)
        elif tag == "table" and attributes.get("id") == "leaderboard":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    return parser


def decoded_png(data_uri: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert data_uri.startswith(prefix), data_uri[:40]
    raw = base64.b64decode(data_uri[len(prefix) :], validate=True)
    assert raw.startswith(b"\x89PNG")
    return Image.open(io.BytesIO(raw))


@pytest.fixture
def page(tmp_path) -> tuple[str, Path]:
    leaderboard, runs, metrics = write_project(tmp_path)
    out = tmp_path / "leaderboard" / "report.html"
    out = build_report(leaderboard, runs, out, metrics_dir=metrics)
    return out.read_text(), out


def test_table_has_a_row_per_model_in_rank_order_and_the_floor(page):
    rows = parse(page[0]).rows
    header, body = rows[0], rows[1:]
    assert header[:3] == ["rank", "model", "run id"]
    assert [r[1] for r in body] == ["stylegan", "vae", "dcgan", "floor (real vs real)"]
    for row in body[:3]:
        assert row[2] == RUN_IDS[row[1]]
        fid = SCORES[row[1]]
        low, high = interval(fid)["low"], interval(fid)["high"]
        assert row[3] == f"{fid:.4g} [{low:.4g}, {high:.4g}]"
    floor = interval(3.65)
    assert body[3][3] == f"3.65 [{floor['low']:.4g}, {floor['high']:.4g}]", "real vs real"
    for column in ("precision", "recall", "density", "coverage", "FID_inf"):
        assert column in header, column
    precision = header.index("precision")
    assert [row[precision].split(" [")[0] for row in body] == ["0.5", "0.5", "0.5", "0.93"]


def test_every_picture_is_an_embedded_png_of_the_right_size(page):
    images = parse(page[0]).images
    by_alt = {img["alt"]: decoded_png(img["src"]) for img in images}
    assert len(by_alt) == len(images), "alt texts are distinct"
    for model, size in GRID_SIZES.items():
        (alt,) = [a for a in by_alt if a.startswith("samples grid") and f" {model} " in a]
        assert RUN_IDS[model] in alt and "step 20" in alt, "latest step, with its run id"
        assert by_alt[alt].size == size
        (nearest,) = [a for a in by_alt if a.startswith("the closest pairs") and model in a]
        assert by_alt[nearest].size == NEAREST_SIZE
    (reconstructions,) = [a for a in by_alt if a.startswith("reconstructions grid")]
    assert "vae" in reconstructions and by_alt[reconstructions].size == RECONSTRUCTION_SIZE
    curves = [a for a in by_alt if a.startswith("training curves")]
    assert len(curves) == 2, "dcgan and vae have a metrics.csv, stylegan does not"
    assert all(by_alt[a].width > 300 for a in curves)
    counts = [a for a in by_alt if a.startswith("FID and KID of")]
    assert sorted(a.split()[4] for a in counts) == sorted(SCORES), "one plot per model"
    assert all(by_alt[a].width > 300 for a in counts)
    # 3 sample grids + 1 reconstruction grid + 2 curve figures + 3 sample-count plots
    # + 3 nearest-pair pictures
    assert len(images) == 12


def test_nothing_is_loaded_from_the_network(page):
    text = page[0]
    without_data = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert "http" not in without_data.lower()
    for reference in ("//", "url(", "<script", "<link", "@import"):
        assert reference not in without_data
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)


def test_header_names_the_runs_and_says_the_images_are_generated(page):
    header = page[0].split("</header>")[0]
    assert "machine-generated by genlab" in header
    assert all(run_id in header for run_id in RUN_IDS.values())


def test_a_missing_csv_is_a_note_not_a_crash(page):
    # the per-class section has its own notes (these metrics files predate per_class)
    text = re.sub(r'<section id="per-class">.*?</section>', "", page[0], flags=re.DOTALL)
    notes = re.findall(r'<p class="note missing">([^<]*)</p>', text)
    assert len(notes) == 1
    assert notes[0].startswith("stylegan: no training curves") and "metrics.csv" in notes[0]


def test_written_atomically_and_missing_leaderboard_refused(page, tmp_path):
    out = page[1]
    written = ["leaderboard.json", "leaderboard.md", "report.html", "scores.csv"]
    assert sorted(p.name for p in out.parent.iterdir()) == written, "no temporary file left"
    cfg = OmegaConf.create(
        {
            "paths": {"metrics_dir": str(tmp_path / "metrics")},
            "report": {
                "leaderboard": str(tmp_path / "nowhere.json"),
                "runs_dir": str(tmp_path / "runs"),
                "out_html": str(tmp_path / "other.html"),
                "title": "t",
            },
        }
    )
    with pytest.raises(StageInputError, match="dvc repro compare"):
        run_report(cfg)
    assert not (tmp_path / "other.html").exists()


def test_stage_writes_the_page_from_config(tmp_path):
    leaderboard, runs, metrics = write_project(tmp_path)
    cfg = OmegaConf.create(
        {
            "paths": {"metrics_dir": str(metrics)},
            "report": {
                "leaderboard": str(leaderboard),
                "runs_dir": str(runs),
                "out_html": str(tmp_path / "out" / "report.html"),
                "curves_dir": str(tmp_path / "out" / "curves"),
                "title": "My <runs>",
                "smoothing": DEFAULT_SMOOTHING,
            },
        }
    )
    out = run_report(cfg)
    assert out == tmp_path / "out" / "report.html"
    assert "<title>My &lt;runs&gt;</title>" in out.read_text()
    # the cross-model tables dvc.yaml's plots read: a column per model, in ranking order
    ranking = json.loads(leaderboard.read_text())["ranking"]
    loss_g = (tmp_path / "out/curves/train_loss_g.csv").read_text().splitlines()
    assert loss_g[0] == ",".join(["step", *ranking])
    row = dict(zip(loss_g[0].split(","), loss_g[1].split(","), strict=True))
    assert row == {"step": "9", "dcgan": "3.9", "vae": "", "stylegan": ""}
    elbo = (tmp_path / "out/curves/train_neg_elbo_bits_per_dim.csv").read_text().splitlines()
    assert [line.split(",")[ranking.index("vae") + 1] for line in elbo[1:]] == ["1.08", "0.67"]


def test_curves_skip_empty_cells_and_bookkeeping_columns(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(GAN_CSV)
    curves = read_curves(path)
    assert sorted(curves) == ["train/d_real_accuracy", "train/loss_d", "train/loss_g"]
    assert curves["train/loss_d"] == [(9.0, 0.07), (29.0, 0.04)]
    assert curves["train/loss_g"] == [(9.0, 3.9), (19.0, 4.6), (29.0, 4.9)]


def test_markdown_and_page_show_the_same_rows_in_rank_order(page, tmp_path):
    """leaderboard.json stores models by name; both views must still list them by rank."""
    import json

    from genlab.reporting.leaderboard import leaderboard_markdown

    board = json.loads((tmp_path / "leaderboard" / "leaderboard.json").read_text())
    assert list(board["models"]) != board["ranking"], "the file's order is not the ranking"
    first_table = leaderboard_markdown(board).split("\n\n## ")[0]
    markdown_rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in first_table.splitlines()
        if line.startswith("| ") and not line.startswith("| rank")
    ]
    page_rows = parse(page[0]).rows[1:]
    assert [row[1] for row in markdown_rows] == board["ranking"] + ["*floor (real vs real)*"]
    for markdown_row, page_row in zip(markdown_rows, page_rows, strict=True):
        assert markdown_row[0] == page_row[0]  # rank
        assert markdown_row[2:] == page_row[3:], "the same figures, the page adds the run id"


def test_page_says_which_models_are_not_distinguishable(page):
    text = page[0]
    body = parse(text).rows[1:]
    assert [(r[0], r[1]) for r in body[:3]] == [("=1", "stylegan"), ("=1", "vae"), ("3", "dcgan")]
    ties = re.findall(r'<p class="ties">([^<]*)</p>', text)
    (sentence,) = [t for t in ties if t.startswith("Not distinguishable at these sample counts")]
    assert "stylegan and vae" in sentence and "dcgan" not in sentence


def comparability_rows(page: str) -> dict[str, dict[str, tuple[str, bool]]]:
    """{model: {column: (text, shaded as differing)}} of the comparability table."""
    table = page.split('<table id="comparability">')[1].split("</table>")[0]
    head = re.findall(r"<th>([^<]*)</th>", table)
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1]):
        cells = re.findall(r'<td( class="differs")?>([^<]*)</td>', row)
        rows[cells[0][1]] = {h: (t, bool(c)) for h, (c, t) in zip(head[1:], cells[1:], strict=True)}
    return rows


def test_comparability_table_shades_what_differs(tmp_path):
    results = {m: metrics_result(m) for m in SCORES}
    results["vae"]["comparability"]["versions"] = {**VERSIONS, "torch": "2.12.0"}
    leaderboard, runs, metrics = write_project(tmp_path, results)
    text = build_report(leaderboard, runs, tmp_path / "r.html", metrics_dir=metrics).read_text()
    rows = comparability_rows(text)
    assert sorted(rows) == sorted(SCORES)
    for model, row in rows.items():
        assert row["weights sha256"] == ("222af0793797", False)
        assert row["reference (split, size)"] == ("test, 360", False)
        assert row["bootstrap"] == ("200 rounds, 0.95 level", False)
        assert row["input"][0].startswith("32 px")
        version, shaded = row["versions"]
        assert shaded and f"torch {'2.12.0' if model == 'vae' else '2.13.0'}" in version


def test_old_metrics_files_give_notes_and_na_not_a_crash(tmp_path):
    """Metrics files from before intervals, precision / recall and sample counts."""
    results = {}
    for model in SCORES:
        record = metrics_result(model)
        for key in ("intervals", "sample_counts", "comparability", "precision", "fid_inf"):
            del record[key]
        record["floor"] = {
            k: record["floor"][k] for k in ("fid", "kid_mean", "kid_std", "isc_mean")
        }
        results[model] = record
    leaderboard, runs, metrics = write_project(tmp_path, results)
    text = build_report(leaderboard, runs, tmp_path / "r.html", metrics_dir=metrics).read_text()
    rows = parse(text).rows
    precision = rows[0].index("precision")
    assert all(row[precision] == "n/a" for row in rows[1:])
    assert [row[0] for row in rows[1:4]] == ["1", "2", "3"], "no tie claimed"
    notes = re.findall(r'<p class="note missing">([^<]*)</p>', text)
    assert sum("no scores at several sample counts" in n for n in notes) == len(SCORES)
    assert not [i for i in parse(text).images if i["alt"].startswith("FID and KID of")]
    assert "No interval of `kid_mean`" in text
    assert all(row["weights sha256"][0] == "n/a" for row in comparability_rows(text).values())


def test_page_says_the_leaderboards_direction_sentence(page):
    """Which score is better high or low is written once (metric_keys.HIGHER_IS_BETTER): the
    page's paragraph above the table carries the Markdown leaderboard's sentence."""
    text = page[0]
    intro = text.split('<section id="leaderboard-section">')[1].split("<table")[0]
    assert better_sentence() in intro
    assert "precision, recall, density and coverage: higher is better" in intro


def seeds_table(page: str) -> tuple[list[str], list[list[str]]]:
    """The over-seeds table: its header and rows of cell text."""
    table = page.split('<table id="seeds">')[1].split("</table>")[0]
    head = [html.unescape(h) for h in re.findall(r"<th>([^<]*)</th>", table)]
    rows = [
        [html.unescape(c) for c in re.findall(r"<td>([^<]*)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])
    ]
    return head, rows


def test_page_shows_mean_and_std_over_seeds_and_every_runs_wandb_id(tmp_path):
    """Three seeds per model: the over-seeds table gives each model's mean ± sample std
    (n=3) of FID and KID computed from the three metrics files, the per-seed KIDs in seed
    order, and the runs table every run's W&B id, linked where its train summary records a
    W&B URL (a synced run) and only then."""
    seeds = (0, 1, 2)
    leaderboard, runs, metrics = write_project(tmp_path, seeds=seeds)
    synced = run_name("vae", 1)
    url = "https://wandb.ai/team/genlab/runs/bbbb0001"
    write_json(runs / synced / "train_summary.json", {"links": {"wandb_url": url}})
    write_json(
        runs / run_name("dcgan", 2) / "train_summary.json",
        {"links": {"wandb_url": "javascript:alert(1)"}},  # not a web page: not linked
    )
    text = build_report(leaderboard, runs, tmp_path / "r.html", metrics_dir=metrics).read_text()
    head, rows = seeds_table(text)
    assert head[:3] == ["rank", "model", "seeds"] and "KID x 1" in head
    assert head[-1] == "per seed (KID x 1)"
    by_model = {row[1]: dict(zip(head, row, strict=True)) for row in rows}
    assert list(by_model) == ["stylegan", "vae", "dcgan"]
    for model, row in by_model.items():
        kids = [
            json.loads((metrics / f"{run_name(model, s)}.json").read_text())["kid_mean"]
            for s in seeds
        ]
        mean, std = statistics.fmean(kids), statistics.stdev(kids)
        assert row["KID x 1"] == f"{mean:.4g} ± {std:.2g} (n=3)", row
        assert row["seeds"] == "0, 1, 2"
        assert row["per seed (KID x 1)"] == " / ".join(f"{k:.4g}" for k in kids)
    seed_notes = re.findall(r'<p class="seed-ties">([^<]*)</p>', text)
    assert any("do not overlap" in n and "min..max" in n for n in seed_notes), seed_notes
    table = text.split('<table id="runs">')[1].split("</table>")[0]
    cells = re.findall(r'<td class="wandb">(.*?)</td>', table)
    assert len(cells) == len(SCORES) * len(seeds)
    links = re.findall(r'<a href="([^"]*)"', table)
    assert links == [url], "only the synced run is linked"
    for model in SCORES:
        for seed in seeds:
            run_id = RUN_IDS[model] if seed == 0 else f"{RUN_IDS[model][:4]}{seed:04d}"
            assert sum(run_id in c for c in cells) == 1, (model, seed)
    assert sum("(not synced)" in c for c in cells) == len(cells) - 1


@pytest.mark.parametrize(
    ("extractor", "header", "factor"),
    [("classifier", "KID x 1", 1), ("inception", "KID x 10^3", 1000)],
)
def test_kid_column_states_its_scale_and_is_scaled(tmp_path, extractor, header, factor):
    """The KID header names the scale its numbers are shown in for the feature space
    (metric_keys.display_exponent), in the page and in leaderboard.md, and the numbers are
    the raw KIDs times that scale; the files keep the raw KID."""
    results = {}
    for model in SCORES:
        record = metrics_result(model)
        record["extractor"] = record["comparability"]["extractor"] = extractor
        if extractor == "inception":  # Inception-feature KIDs are ~0.01
            record["kid_mean"] = SCORES[model] / 4000
            record["intervals"]["kid_mean"] = interval(record["kid_mean"])
        results[model] = record
    leaderboard, runs, metrics = write_project(tmp_path, results)
    text = build_report(leaderboard, runs, tmp_path / "r.html", metrics_dir=metrics).read_text()
    rows = parse(text).rows
    assert header in rows[0] and "KID" not in rows[0], rows[0]
    assert f"untrained {header}" in rows[0]
    kid = rows[0].index(header)
    for row in rows[1:4]:
        raw = results[row[1]]["kid_mean"]
        assert row[kid].split(" [")[0] == f"{raw * factor:.4g}", (row[kid], raw)
    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    assert f"| {header} |" in markdown
    board = json.loads(leaderboard.read_text())
    assert board["models"]["vae"]["kid_mean"] == results["vae"]["kid_mean"], "stored raw"


def test_smoothing_is_a_debiased_ema_and_the_caption_says_so(page):
    values = [4.0, 2.0, 6.0, 6.0]
    weight = 0.6
    expected, last = [], 0.0
    for i, value in enumerate(values, start=1):
        last = weight * last + (1 - weight) * value
        expected.append(last / (1 - weight**i))
    assert smooth(values, weight) == pytest.approx(expected)
    assert smooth(values, weight)[0] == values[0], "no pull towards zero at the start"
    assert smooth(values, 0.0) == values
    assert smooth([3.0] * 5, 0.9) == pytest.approx([3.0] * 5)
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", page[0])
    curves = [c for c in captions if "metrics.csv" in c]
    assert len(curves) == 2 and all(
        "smoothed (EMA weight 0.6)" in c and "faint: raw" in c for c in curves
    )


def test_the_curves_draw_the_smoothed_line_over_the_faint_raw_one(tmp_path):
    """Both lines are in the picture: pixels of the curve colour (the smoothed line) and of
    the same colour at RAW_ALPHA over white (the raw series), which smoothing 0 would not
    have apart."""
    steps = list(range(0, 400, 4))
    noisy = [(float(s), 2.0 + (3.0 if i % 2 else -3.0)) for i, s in enumerate(steps)]
    solid = tuple(int(CURVE_COLOR[i : i + 2], 16) for i in (1, 3, 5))
    faint = tuple(round(RAW_ALPHA * c + (1 - RAW_ALPHA) * 255) for c in solid)

    def pixels_near(weight: float, target: tuple[int, ...]) -> int:
        png_bytes = curves_png("m", {"train/loss": noisy}, weight)
        colors = Image.open(io.BytesIO(png_bytes)).convert("RGB").getcolors(maxcolors=1 << 20)
        return sum(
            n for n, c in colors if max(abs(a - b) for a, b in zip(c, target, strict=True)) <= 6
        )

    assert pixels_near(0.9, solid) > 200, "the smoothed line"
    assert pixels_near(0.9, faint) > 200, "the raw series, faint behind it"
    assert pixels_near(0.0, faint) < pixels_near(0.9, faint) / 2, "unsmoothed: drawn over it"
