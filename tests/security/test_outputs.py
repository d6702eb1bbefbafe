"""What genlab writes, and what it may replace: output folders never take the user's own files
or the project with them, a folder swap never leaves neither copy, a killed run's checkpoints
are moved aside (never deleted), strings from others cannot inject HTML or links into a model
card, and a NaN metric cannot decide a ranking."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genlab.errors import OutputPathError
from genlab.export.model_card import render_model_card
from genlab.io import atomic_dir, write_text
from genlab.layout import OUTPUT_MARKER

from ..conftest import PROJECT_ROOT
from ..support.dvc_project import run_files
from ..support.images import shape_image
from ..support.training import run_tiny_training

pytestmark = pytest.mark.timeout(300)


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256): what must survive untouched."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def stage_script(stage: str, cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "pipelines" / f"{stage}.py"),
            *overrides,
            f"hydra.run.dir={cwd / 'hydra'}",
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "WANDB_MODE": "disabled"},
    )


# -- row 4: output paths ------------------------------------------------------------------------


def user_image_folder(project: Path) -> Path:
    images = project / "data" / "images"
    for kind in ("cats", "dogs"):
        (images / kind).mkdir(parents=True)
        for index in range(3):
            shape_image("circles" if kind == "cats" else "squares", index).save(
                images / kind / f"{kind}_{index}.png"
            )
    return images


def test_fetch_refuses_to_write_its_dataset_over_the_folder_it_reads(tmp_path):
    """Row 4: `data=folder data.name=images` makes data.dir = data/images = the source folder;
    the fetch replaced the user's cats/ and dogs/ with npz files."""
    images = user_image_folder(tmp_path)
    before = snapshot(images)
    result = stage_script("fetch", tmp_path, "data=folder", "data.name=images")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "`data.dir`" in result.stderr and "data.source.path" in result.stderr
    assert snapshot(images) == before


@pytest.mark.parametrize(
    "override,key",
    [
        ("paths.run_dir=../../etc", "paths.run_dir"),
        ("paths.export_dir=", "paths.export_dir"),
        ("paths.metrics_dir=.", "paths.metrics_dir"),
        ("compare.out_dir=./", "compare.out_dir"),
        ("paths.data_dir=data/../..", "paths.data_dir"),
    ],
)
def test_empty_dot_and_escaping_output_paths_are_refused_at_validation(tmp_path, override, key):
    """Row 4: `paths.export_dir=` resolved to `.` (the whole project, swapped out by the export)
    and `paths.run_dir=../../etc` validated: an output path must be a folder inside the
    project, not the project itself."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "keep.txt").write_text("the user's file")
    result = stage_script("train", project, override)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"`{key}`" in result.stderr
    written = {k: v for k, v in snapshot(project).items() if not k.startswith("hydra/")}
    assert written == {"keep.txt": hashlib.sha256(b"the user's file").hexdigest()}


@pytest.mark.parametrize("flag", [None, "paths.outside_project=true", "environment"])
def test_an_absolute_output_path_outside_the_project_needs_consent(tmp_path, flag):
    """Row 4: `paths.run_dir=/some/other/folder` validated: an output outside the project is
    refused unless paths.outside_project (or GENLAB_OUTPUTS_OUTSIDE_PROJECT) says it is meant."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    overrides = [f"paths.metrics_dir={elsewhere}"]
    env = {k: v for k, v in os.environ.items() if k != "GENLAB_OUTPUTS_OUTSIDE_PROJECT"}
    if flag is not None:  # consent for the absolute path: the `..` escape stays refused
        overrides.append("paths.run_dir=../../etc")
    if flag == "environment":
        env["GENLAB_OUTPUTS_OUTSIDE_PROJECT"] = "true"
    elif flag:
        overrides.append(flag)
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "pipelines/compare.py"), *overrides],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=120,
        env={**env, "PYTHONPATH": str(PROJECT_ROOT), "WANDB_MODE": "disabled"},
    )
    assert result.returncode == 2, result.stderr[-3000:]
    if flag is None:
        assert "`paths.metrics_dir` must be inside the project" in result.stderr
        assert "paths.outside_project=true" in result.stderr
    else:  # consent given: the absolute path passes, the relative escape is still refused
        assert "`paths.metrics_dir`" not in result.stderr, result.stderr[-3000:]
        assert "`paths.run_dir` must stay inside the project" in result.stderr
    assert not elsewhere.exists()


def test_validation_and_atomic_dir_apply_one_rule_to_links_to_the_project(
    tmp_path, monkeypatch, compose_config
):
    """Row 4: validation (config.schema) and the folder swap (io.atomic_dir) each decided
    "the project, its parents, home" on their own; validation compared paths without following
    links, so `paths.export_dir=alias` (a link to the project) or a link to a folder above it
    validated, and only the swap stopped it. Both now ask io.protected_folder."""
    from genlab.config.validate import validate_config
    from genlab.errors import ConfigError
    from genlab.io import protected_folder

    project = tmp_path / "project"
    project.mkdir()
    (project / "alias").symlink_to(project)
    (project / "up").symlink_to(tmp_path)
    monkeypatch.chdir(project)
    for value in ("alias", "up", "./alias/", str(project / "up")):
        with pytest.raises(ConfigError, match=r"`paths.export_dir`.*project"):
            validate_config(compose_config(f"paths.export_dir={value}"))
        assert protected_folder(value, project) is not None
        with pytest.raises(OutputPathError, match="project"):
            with atomic_dir(value):
                pass
    validate_config(compose_config("paths.export_dir=exports/dcgan"))
    assert protected_folder("exports/dcgan", project) is None
    assert protected_folder(Path.home(), project) is not None
    assert protected_folder("/", project) is not None


def test_atomic_dir_refuses_the_project_itself(tmp_path, monkeypatch):
    """Row 4: `atomic_dir(".")` deleted a whole project, `.git` included."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    for target in (".", str(tmp_path), str(tmp_path.parent), "sub/.."):
        with pytest.raises(OutputPathError, match="project"):
            with atomic_dir(target) as staging:
                write_text(staging / "a.txt", "new")
        assert snapshot(tmp_path) == before
    assert not [p for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}.")]


def test_atomic_dir_refuses_a_folder_genlab_did_not_make(tmp_path):
    """Row 4: an output path that names a folder of the user's (a typo, a shared config)
    replaced it whole; without genlab's marker file the folder is left alone."""
    exports = tmp_path / "exports"
    thesis = exports / "dcgan"
    thesis.mkdir(parents=True)
    (thesis / "thesis.tex").write_text("years of work")
    photos = exports / "vae"
    (photos / "holiday").mkdir(parents=True)
    (photos / "holiday" / "beach.png").write_bytes(b"\x89PNG")
    before = snapshot(exports)
    with pytest.raises(OutputPathError) as caught:
        with atomic_dir(thesis) as staging:
            write_text(staging / "MODEL_CARD.md", "card")
    message = str(caught.value)
    assert str(thesis) in message and OUTPUT_MARKER in message and "thesis.tex" in message
    body_ran = []
    with pytest.raises(OutputPathError, match="holiday"):
        with atomic_dir(photos) as staging:  # a subfolder: refused before any work
            body_ran.append(True)
    assert not body_ran
    assert snapshot(exports) == before
    assert sorted(p.name for p in exports.iterdir()) == ["dcgan", "vae"], "no staging left"


def test_atomic_dir_replaces_its_own_folders_and_marks_them(tmp_path):
    """Row 4: what genlab made (the marker) is replaced; a folder of an earlier genlab (no
    marker, only the names this write produces) is taken over once; nothing else is."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "export.json").write_text("{}")  # an earlier genlab's export: no marker yet
    with atomic_dir(folder) as staging:
        write_text(staging / "export.json", '{"v": 1}')
        write_text(staging / "MODEL_CARD.md", "card")
    assert sorted(p.name for p in folder.iterdir()) == [
        OUTPUT_MARKER,
        "MODEL_CARD.md",
        "export.json",
    ]
    with atomic_dir(folder) as staging:
        write_text(staging / "export.json", '{"v": 2}')
    assert (folder / "export.json").read_text() == '{"v": 2}'
    assert sorted(p.name for p in folder.iterdir()) == [OUTPUT_MARKER, "export.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no aside copy left"


# -- row 16: the swap ------------------------------------------------------------------------

CRASHING_SWAP = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from genlab.io import atomic_dir, write_text

    target, event, nth = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    seen = []

    def crash(name, args):
        # a SIGKILL / power cut at one exact point of the swap: no cleanup runs
        if name == event and (
            (event == "os.remove" and str(args[0]).startswith("old_"))
            or (event == "os.rename" and os.fspath(args[1]) == os.fspath(target))
        ):
            seen.append(args)
            if len(seen) == nth:
                os._exit(137)

    sys.addaudithook(crash)
    with atomic_dir(target) as staging:
        for index in range(20):
            write_text(staging / f"new_{index}.txt", "new")
    """
)


@pytest.mark.parametrize(
    "event,nth", [("os.remove", 5), ("os.rename", 1)], ids=["while-removing", "while-renaming"]
)
def test_a_crash_during_the_swap_leaves_a_whole_copy(tmp_path, event, nth):
    """Row 16: the old folder was deleted before the new one was renamed in: a crash while
    deleting left half of the old folder and none of the new. Now the old one is renamed aside
    first: at any point, the target is whole (old or new), or both whole copies lie beside it."""
    target = tmp_path / "data" / "digits"
    target.mkdir(parents=True)
    old = {f"old_{index}.txt" for index in range(20)}
    for name in old:
        (target / name).write_text("old")
    (target / OUTPUT_MARKER).write_text("")
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_SWAP, str(target), event, str(nth)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")},
        timeout=60,
    )
    assert result.returncode == 137, result.stderr[-3000:]
    new = {f"new_{index}.txt" for index in range(20)}

    def whole(folder: Path) -> bool:
        names = {p.name for p in folder.iterdir()} - {OUTPUT_MARKER}
        return names in (old, new) and all(
            (folder / n).read_text() == ("old" if n in old else "new") for n in names
        )

    if target.is_dir() and whole(target):
        return
    beside = [p for p in target.parent.iterdir() if p != target]
    copies = {frozenset(p.name for p in folder.iterdir()) - {OUTPUT_MARKER} for folder in beside}
    assert not target.exists(), "the target is neither the old nor the new folder"
    assert frozenset(old) in copies and frozenset(new) in copies, beside


# -- row 11: checkpoints of a killed run -------------------------------------------------------


def test_a_killed_runs_checkpoint_is_moved_aside_not_deleted(tmp_path, digits_dir):
    """Row 11: a config change deleted a killed run's checkpoints (DVC keeps no copy: gone for
    good). Now they are moved aside, the message names where, and last.ckpt is byte-identical."""
    kill = ["+callbacks.kill._target_=tests.support.planted.KillAtIteration"]
    common = (
        "train.steps=30",
        "train.checkpoint_every_n_steps=5",
        "train.sample_every_n_steps=100",
    )
    killed = run_tiny_training(tmp_path, digits_dir, *common, *kill, "+callbacks.kill.iteration=12")
    assert killed.returncode == -9, killed.stderr[-3000:]
    last = tmp_path / "run/checkpoints/last.ckpt"
    old_bytes = last.read_bytes()
    old_run_id = (tmp_path / "run/checkpoints/run_id").read_text()

    changed = run_tiny_training(tmp_path, digits_dir, *common, "model.ema_decay=0.99")
    assert changed.returncode == 0, changed.stderr[-3000:]
    output = changed.stdout + changed.stderr
    assert "config or code changed" in output
    moved = [Path(p) for p in (tmp_path / "run").glob("checkpoints.stale-*")]
    assert len(moved) == 1, sorted(p.name for p in (tmp_path / "run").iterdir())
    assert str(moved[0]) in output, output[-3000:]
    assert (moved[0] / "last.ckpt").read_bytes() == old_bytes
    assert (moved[0] / "run_id").read_text() == old_run_id


def checkpoint_folder(run_dir: Path, run_id: str, fingerprint: str = "fp-old") -> Path:
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "run_id").write_text(run_id + "\n")
    (folder / "training_fingerprint").write_text(fingerprint + "\n")
    return folder


def save_last(folder: Path, global_step: int) -> None:
    import torch

    torch.save(
        {"global_step": global_step, "state_dict": {"w": torch.ones(3)}}, folder / "last.ckpt"
    )


def generator_recording(path: Path, run_id: str) -> None:
    """A generator file whose record names ``run_id`` (the header is all that is read)."""
    import torch
    from safetensors.torch import save_file

    document = {"format": "genlab-generator", "record": {"run_id": run_id}}
    save_file({"w": torch.zeros(1)}, str(path), metadata={"genlab": json.dumps(document)})


def stale_folders(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("checkpoints.stale-*"))


def test_files_genlab_did_not_write_are_moved_aside_with_the_checkpoint_folder(tmp_path, caplog):
    """Row 11: with no last.ckpt, the whole checkpoint folder was deleted (`rmtree`), taking
    whatever else was in it: other .ckpt files, a user's notes, a user's folder if
    paths.run_dir pointed at one. Now only genlab's own bookkeeping is deleted; anything else
    is moved aside intact and named."""
    from genlab.training.checkpoints import prepare_checkpoint_dir

    run_dir = tmp_path / "run"
    folder = checkpoint_folder(run_dir, "run-a")
    (folder / "epoch=3-step=900.ckpt").write_bytes(os.urandom(4096))
    (folder / "notes").mkdir()
    (folder / "notes" / "thesis.tex").write_text("years of work")
    before = snapshot(folder)
    with caplog.at_level("WARNING", logger="genlab"):
        resume, run_id = prepare_checkpoint_dir(folder, "fp-new", True, 100)
    assert not resume and run_id != "run-a"
    [aside] = stale_folders(run_dir)
    assert snapshot(aside) == before, "moved whole, byte for byte"
    assert str(aside) in caplog.text and "epoch=3-step=900.ckpt" in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == ["run_id", "training_fingerprint"]

    # only genlab's bookkeeping (a run that never saved a checkpoint): nothing to keep
    bare = checkpoint_folder(tmp_path / "bare", "run-b")
    prepare_checkpoint_dir(bare, "fp-new", True, 100)
    assert not stale_folders(tmp_path / "bare")


def test_a_finished_runs_checkpoint_goes_only_when_its_generator_file_holds_the_result(
    tmp_path, caplog
):
    """Row 11: every `dvc repro -f` and every train.resume=false moved a finished run's
    checkpoint aside with "Resume them ...", which is untrue (a finished run is not resumed),
    and full copies piled up without bound. Now a finished run's checkpoint is deleted only
    when the generator file beside it records the same run id (its result is kept there);
    otherwise (the generator gone, as after `dvc repro -f`, or another run's) it is moved
    aside with a message that says it finished; an unfinished run's is moved aside to resume."""
    from genlab.training.checkpoints import prepare_checkpoint_dir

    def start(run_dir: Path, step: int, generator_run: str | None, resume: bool) -> str:
        folder = checkpoint_folder(run_dir, "run-x", fingerprint="fp")
        save_last(folder, step)
        if generator_run:
            generator_recording(run_dir / "generator.safetensors", generator_run)
        caplog.clear()
        with caplog.at_level("WARNING", logger="genlab"):
            resumed, run_id = prepare_checkpoint_dir(folder, "fp", resume, 100)
        assert not resumed and run_id != "run-x"
        assert not (folder / "last.ckpt").exists()
        return caplog.text

    # finished, result on disk (same run id): replaced, repeatedly, nothing piles up
    for attempt, resume in enumerate((True, False)):
        run_dir = tmp_path / f"kept-{attempt}"
        message = start(run_dir, 100, "run-x", resume)
        assert not stale_folders(run_dir)
        assert str(run_dir / "generator.safetensors") in message and "Resume" not in message

    # finished, generator gone (`dvc repro -f` deleted it) or another run's: moved aside
    for case, generator_run in (("gone", None), ("other", "run-y")):
        run_dir = tmp_path / case
        message = start(run_dir, 100, generator_run, True)
        [aside] = stale_folders(run_dir)
        assert (aside / "last.ckpt").is_file() and str(aside) in message
        assert "had finished" in message and "Resume" not in message

    # unfinished (train.resume=false; the generator file is an older run's): moved aside
    run_dir = tmp_path / "unfinished"
    message = start(run_dir, 40, "run-older", False)
    [aside] = stale_folders(run_dir)
    assert (aside / "last.ckpt").is_file() and "Resume them" in message


# -- row 13: the model card ----------------------------------------------------------------------

HOSTILE = (
    "<script>alert(1)</script> [click](javascript:alert(1)) ![x](http://evil/track.png)\n"
    "# Not a heading\n<img src=x onerror=alert(1)> `code` [ref]: http://evil"
)


def test_model_card_prints_strings_from_others_as_plain_text(tmp_path):
    """Row 13: a dataset's meta.json (someone else's archive) or data.source.licence put raw
    HTML, tracking images and javascript: links into MODEL_CARD.md, which renderers (GitHub,
    W&B, the Hub) display."""
    card = render_model_card(
        {
            "model_name": "dcgan<b>",
            "run_id": "[x](javascript:alert(1))",
            "data": {"name": "![t](http://evil/a.png)", "licence": HOSTILE, "source": HOSTILE},
            "metrics": {"extractor": "<iframe src=//evil>"},
        }
    )
    for forbidden in ("<script", "<img", "<iframe", "<b>", "](javascript:", "![", "](http"):
        assert forbidden not in card, forbidden
    assert "\n# Not a heading" not in card
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in card, "the text itself is still shown"
    assert "click" in card and "javascript:alert" in card


def test_bare_urls_and_emails_from_others_are_not_turned_into_links():
    """Row 13: GitHub, W&B and most Markdown renderers turn a bare `https://...`, `www....` or
    `name@host` into a link (GFM autolinks): a licence string from someone else's archive put
    a clickable phishing link into the card. Now the characters that start an autolink are
    backslash-escaped: the rendered text reads the same, and no autolink can form."""
    licence = (
        "CC BY 4.0; log in at https://evil.example/login or HTTP://EVIL.example, "
        "WWW.evil.example, ftp://files.evil.example or mail admin@evil.example"
    )
    card = render_model_card({"data": {"licence": licence, "source": "mailto:a@evil.example"}})
    lowered = "\n".join(line for line in card.lower().splitlines() if "evil" in line)
    assert "licence" in lowered and "source" in lowered
    for autolink in ("://", "www."):
        assert autolink not in lowered, autolink
    assert lowered.count("\\@") == lowered.count("@") == 2, "every @ escaped"
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").render(card)
    assert "<a " not in html
    assert licence in html.replace("&amp;", "&"), "the rendered card shows the text unchanged"
    assert "mailto:a@evil.example" in html


# -- row 14 (ranking): NaN metrics -----------------------------------------------------------


def metrics_record(kid: float, fid: float) -> dict:
    return {
        "extractor": "classifier",
        "fid": fid,
        "kid_mean": kid,
        "kid_std": 1.0,
        "isc_mean": 5.0,
        "isc_std": 0.2,
        "floor": {"fid": 3.0, "kid_mean": -2.0, "kid_std": 1.0, "isc_mean": 9.0, "isc_std": 0.1},
        "run_id": "r",
        "train_steps": 10,
    }


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["NaN", "Infinity"])
def test_compare_refuses_a_non_finite_metric_whatever_the_order(tmp_path, bad):
    """Row 14: NaN compares false with everything, so `sorted` put a NaN model wherever the
    file order left it: ranking by fid with one NaN gave a different winner per order."""
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    runs = {model: run_files(model, 0, root=tmp_path) for model in "abc"}  # one seed each
    for model, (kid, fid) in {"a": (10.0, 50.0), "b": (5.0, bad), "c": (7.0, 20.0)}.items():
        record = {
            **metrics_record(kid, fid),
            "model": model,
            "seed": 0,
            "run_name": runs[model].name,
        }
        runs[model].metrics.write_text(json.dumps(record))
    bad_file = runs["b"].metrics
    assert ("NaN" if bad != bad else "Infinity") in bad_file.read_text()
    for order in ("[a,b,c]", "[c,b,a]", "[b,c,a]"):
        result = stage_script(
            "compare",
            tmp_path,
            f"compare.models={order}",
            "compare.seeds=[0]",
            "compare.rank_by=fid",
            f"paths.metrics_dir={metrics}",
            f"compare.out_dir={tmp_path / 'leaderboard'}",
        )
        assert result.returncode != 0, result.stdout[-2000:]
        message = result.stderr
        assert "`fid`" in message and str(bad_file) in message, message[-2000:]
        assert runs["b"].stage("evaluate") in message
        assert not (tmp_path / "leaderboard").exists()


def test_a_config_value_cannot_close_the_cards_code_block():
    """Row 13: the training config (from someone else's generator file) is printed in a
    ```yaml block; a value holding ``` closed it and the rest rendered as Markdown/HTML."""
    card = render_model_card({"config": {"note": "```\n<script>alert(1)</script>\n```"}})
    block = card[card.index("## Training configuration") :]
    fence = block.split("\n")[2].removesuffix("yaml")
    assert set(fence) == {"`"} and len(fence) > 3, block
    body = block.split(f"{fence}yaml\n", 1)[1]
    assert body.rstrip().endswith(fence) and body.count(fence) == 1, "one fence, at the end"
