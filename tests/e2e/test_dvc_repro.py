"""The whole pipeline as a user runs it: `dvc repro` in a fresh git repo, on a tiny budget."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from ..support.dvc_project import PROJECT_ROOT, make_project_repo, run, run_files

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = make_project_repo(tmp_path_factory.mktemp("repo"))
    run(["dvc", "repro"], root)
    return root


# the pipeline's models, as params.yaml lists them (a new model needs no line here)
MODELS = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["pipeline"]["models"]


@pytest.mark.parametrize("model", MODELS)
def test_metrics_are_finite_and_recorded(repo, model):
    files = run_files(model, root=repo)
    metrics = json.loads(files.metrics.read_text())
    assert (metrics["model"], metrics["seed"], metrics["run_name"]) == (
        model,
        files.seed,
        files.name,
    )
    for key in ("fid", "isc_mean", "kid_mean"):
        assert math.isfinite(metrics[key]) and math.isfinite(metrics["floor"][key]), key
        assert math.isfinite(metrics["untrained"][key]), key
    assert metrics["extractor"] == "classifier"
    assert metrics["counts"]["samples"] == 200 and metrics["counts"]["reference"] == 360
    assert metrics["splits"]["floor"] == "train vs test"
    # Real data is far closer to real data than a 40-step model is.
    assert metrics["floor"]["fid"] < metrics["fid"]
    assert metrics["train_images_per_s"] > 0
    from genlab.provenance import read_provenance

    memorization = metrics["memorization"]
    for space in ("feature", "pixel"):
        assert 0 <= memorization[space]["fraction_below_threshold"] <= 1
        assert memorization[space]["threshold"] > 0
    pairs = read_provenance(repo / memorization["pairs_image"])
    assert pairs["run_id"] == metrics["run_id"] and "nearest training image" in pairs["content"]


@pytest.mark.parametrize("model", MODELS)
def test_metrics_have_intervals_manifold_scores_and_fid_inf(repo, model):
    from genlab.metric_keys import FID_INF, INTERVAL_SCORES, MANIFOLD_SCORES

    files = run_files(model)  # relative to the repo, as `dvc exp show` names them
    metrics = json.loads((repo / files.metrics).read_text())
    for scored in (metrics, metrics["floor"]):
        for key in MANIFOLD_SCORES:
            assert 0 <= scored[key] <= (math.inf if key == "density" else 1), key
        assert math.isfinite(scored[FID_INF])
        for key in INTERVAL_SCORES:
            interval = scored["intervals"][key]
            assert interval["low"] <= interval["high"] and interval["std"] >= 0, key
    assert metrics["sample_counts"]["model"]["counts"] == [50, 100, 200]
    comparability = metrics["comparability"]
    assert comparability["reference"] == {"split": "test", "size": 360}
    assert comparability["bootstrap"]["rounds"] == 50
    assert comparability["versions"]["torch-fidelity"]
    # `dvc exp show` lists the new scores as columns of the workspace's metrics
    shown = run(["dvc", "exp", "show", "--json"], repo).stdout
    workspace = json.loads(shown)[0]["data"]["metrics"][str(files.metrics)]["data"]
    assert workspace["precision"] == metrics["precision"]
    assert workspace["intervals"]["fid"]["low"] == metrics["intervals"]["fid"]["low"]
    assert workspace[FID_INF] == metrics[FID_INF]


def test_leaderboard_lists_every_model_beside_the_floor(repo):
    board = json.loads((repo / "leaderboard/leaderboard.json").read_text())
    assert sorted(board["ranking"]) == sorted(MODELS)
    assert [board["models"][m]["rank"] for m in board["ranking"]] == list(range(1, len(MODELS) + 1))
    kids = [board["models"][m]["kid_mean"] for m in board["ranking"]]
    assert kids == sorted(kids)
    table = (repo / "leaderboard/leaderboard.md").read_text()
    for model in MODELS:
        assert f"| {model} |" in table
    assert "floor (real vs real)" in table and "too close (feat / px)" in table
    assert all(0 <= board["models"][m]["memorization_pixel_fraction"] <= 1 for m in MODELS)
    page = (repo / "leaderboard/report.html").read_text()
    for model in MODELS:
        assert board["models"][model]["run_id"] in page
    assert page.count("data:image/png;base64,") >= 2 * len(MODELS)  # grids and curves
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert "leaderboard/leaderboard.json" in json.dumps(shown)


def test_dvc_plots_render_the_comparison(repo, tmp_path):
    out = tmp_path / "plots"
    run(["dvc", "plots", "show", "-o", str(out)], repo)
    page = (out / "index.html").read_text()
    for title in ("FID per model", "KID per model", "GAN generator loss", "VAE negative ELBO"):
        assert title in page, title


@pytest.mark.parametrize("model", MODELS)
def test_exports_load_and_match(repo, model):
    import onnxruntime
    import torch

    from genlab.models.generator_file import load_generator

    files = run_files(model, root=repo)
    export = files.export
    summary = json.loads((export / "export.json").read_text())
    assert summary["onnx"]["max_abs_diff"] < 1e-4 and summary["torchscript"]["max_abs_diff"] < 1e-4
    generator, record = load_generator(files.run.generator)
    assert not record["code_version"].endswith("-dirty"), record["train"]["code_changes"]
    z = torch.randn(3, generator.latent_dim, generator=torch.Generator().manual_seed(7))
    inputs = {"z": z}
    if generator.num_classes:  # vae_class: a label input, the digits' class names
        assert summary["class_names"] == record["class_names"] == [str(d) for d in range(10)]
        inputs["label"] = torch.tensor([7, 0, 3])
    expected = generator(*inputs.values()).detach().numpy()
    scripted = torch.jit.load(str(export / "generator.torchscript.pt"))
    np.testing.assert_allclose(scripted(*inputs.values()).detach().numpy(), expected, atol=1e-4)
    session = onnxruntime.InferenceSession(str(export / "generator.onnx"))
    feeds = {name: value.numpy() for name, value in inputs.items()}
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, atol=1e-4)
    card = (export / "MODEL_CARD.md").read_text()
    assert record["run_id"] in card and "Intended use" in card
    assert "## Memorization" in card and "Samples closer than threshold" in card
    assert "## Classes" in card
    assert (export / "samples.png").is_file()
    grids = sorted(p.name for p in files.run.samples.glob("step_*.png"))
    assert grids == [files.run.sample_grid(20).name, files.run.sample_grid(40).name]
    if model == "vae":
        assert files.run.reconstruction_grid(40).is_file()
    if model == "stylegan":
        for part in ("mapping.onnx", "synthesis.onnx", "mapping.torchscript.pt"):
            assert (export / part).is_file(), part


@pytest.mark.parametrize("model", MODELS)
def test_generate_then_verify_each_exported_model(repo, model, tmp_path):
    """The acceptance a new user tries: generate from the export, then verify the images."""
    out = tmp_path / model
    extra = ["--psi", "0.7", "--mix", "1", "2"] if model == "stylegan" else []
    export = json.loads((run_files(model, root=repo).export / "export.json").read_text())
    extra += ["--class", "7"] if export["num_classes"] else []
    run(
        [
            "genlab",
            "generate",
            str(run_files(model).export / "generator.onnx"),
            "--out",
            str(out),
            "--seeds",
            "0-3",
            "--grid",
            "--interpolate",
            "0",
            "1",
            *extra,
        ],
        repo,
    )
    images = sorted(out.glob("*.png"))
    assert len(images) == 4 + 2 + (1 if model == "stylegan" else 0)
    verified = run(["genlab", "verify", *map(str, images)], repo).stdout
    assert verified.count("verdict: Trusted") == len(images), verified
    if export["num_classes"]:  # each image records the class that made it
        assert verified.count("class_index: 7") >= len(images), verified
    assert run_files(model, root=repo).run.last_checkpoint.is_file()


def test_every_image_and_model_file_the_pipeline_wrote_verifies_as_trusted(repo):
    """Issue 19's acceptance: after `dvc repro`, the exported samples, the evaluation's grids,
    the training grids and every exported model file are signed by this machine's identity."""
    files = [
        *sorted(repo.glob("exports/*/samples.png")),
        *sorted(repo.glob("metrics/*.png")),
        *sorted(repo.glob("runs/*/samples/*.png"))[:3],
        *sorted(repo.glob("exports/*/*.onnx")),
        *sorted(repo.glob("exports/*/*.torchscript.pt")),
    ]
    assert len(files) >= 3 * len(MODELS)
    reports = json.loads(run(["genlab", "verify", "--json", *map(str, files)], repo).stdout)
    assert [report["verdict"] for report in reports] == ["Trusted"] * len(files), reports
    assert {report["credentials"]["genlab"]["code_version"] for report in reports} == {
        run(["git", "rev-parse", "--short=12", "HEAD"], repo).stdout.strip()
    }


def test_training_logged_offline_to_wandb(repo):
    dcgan = run_files("dcgan", root=repo).run
    runs = list(dcgan.wandb.glob("offline-run-*/run-*.wandb"))
    assert runs, "no offline W&B run recorded"
    record = json.loads(dcgan.summary.read_text())
    assert any(record["run_id"] in str(path) for path in runs)


def test_second_repro_runs_nothing(repo):
    result = run(["dvc", "repro"], repo)
    assert "Running stage" not in result.stdout, result.stdout
    assert "up to date" in result.stdout


def test_model_parameter_change_reruns_only_that_model(repo):  # last: it changes the repo
    path = repo / "conf/model/vae.yaml"
    original = path.read_text()
    try:
        path.write_text(original.replace("lr: 1.0e-3", "lr: 5.0e-4"))
        status = run(["dvc", "status", "--json"], repo).stdout
        vae = run_files("vae")
        assert set(json.loads(status)) == {vae.stage("train")}
        ran = run(["dvc", "repro"], repo).stdout
        executed = set(re.findall(r"Running stage '([^']+)'", ran))
        per_run = {vae.stage(stage) for stage in ("train", "evaluate", "export")}
        assert executed == {*per_run, "compare", "report"}, ran
    finally:
        path.write_text(original)
