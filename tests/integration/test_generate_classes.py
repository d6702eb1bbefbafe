"""`genlab generate` on a class-conditional export the real export stage wrote: --list-classes,
--class by index or name, --per-class folders, the class kept fixed along --interpolate /
--psi / --mix, balanced classes by default, the class in every PNG's provenance, and one-line
errors for a class the model does not have."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from genlab.errors import EXIT_BAD_INPUT
from genlab.export.onnx import export_onnx
from genlab.generate import latent, to_uint8
from genlab.models.generator_file import load_generator, save_generator
from genlab.networks.dcgan import DCGANGenerator
from genlab.provenance import read_provenance
from genlab.stages.export import run_export

from ..conftest import compose_config_dir, tiny_model_overrides
from ..support.cli import one_line, run_cli

pytestmark = pytest.mark.timeout(300)

# class names are text from someone else's file: one tries to climb out of the output folder
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "../seven", "eight", "nine"]
SEVEN = NAMES[7]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    """A tiny untrained conditional StyleGAN-lite (random class centres, so truncation towards
    them shows) exported by the real export stage."""
    from hydra.utils import instantiate

    root = tmp_path_factory.mktemp("class-export")
    cfg = compose_config_dir(
        "model=stylegan",
        "model.conditioning=class",
        *tiny_model_overrides("stylegan"),
        f"paths.run_dir={root / 'run'}",
        f"paths.export_dir={root / 'export'}",
        f"paths.metrics_dir={root / 'metrics'}",
        "logger=csv",
        "export.grid_images=4",
    )
    module = instantiate(cfg.model)
    generator = module.sampling_generator()
    torch.manual_seed(0)
    with torch.no_grad():
        generator.w_avg_class.normal_()
    record = {
        "model": "stylegan",
        "run_id": "run-classes",
        "training_fingerprint": "f" * 16,
        "code_version": "0123abc",
        "config": OmegaConf.to_container(cfg, resolve=True),
        "data_meta": {"name": "digits", "image_size": 32, "channels": 1, "classes": NAMES},
        "train": {"steps": 0},
    }
    network_config = OmegaConf.to_container(cfg.model[module.sampling_network_key], resolve=True)
    (root / "run").mkdir()
    save_generator(root / "run/generator.safetensors", generator, network_config, record)
    run_export(cfg)
    return root / "export"


@pytest.fixture(scope="module")
def unconditional(tmp_path_factory) -> Path:
    """A bare unconditional generator.onnx (the metadata generate needs, nothing more)."""
    path = tmp_path_factory.mktemp("plain") / "generator.onnx"
    network = DCGANGenerator(latent_dim=8, base_channels=4, image_size=16)
    export_onnx(network, 8, path, metadata={"latent_dim": "8"}, parity_batch=2)
    return path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).astype(int)


def generate(export_dir: Path, out: Path, *args: str, capsys) -> tuple[int, str, str]:
    return run_cli(
        ["generate", str(export_dir / "generator.onnx"), "--out", str(out), *args], capsys
    )


def tiles(strip: np.ndarray, size: int, pad: int = 2) -> list[np.ndarray]:
    """The tiles of a grid PNG, row by row."""
    rows, columns = (strip.shape[0] - pad) // (size + pad), (strip.shape[1] - pad) // (size + pad)
    return [
        strip[pad + r * (size + pad) : pad + r * (size + pad) + size,
              pad + c * (size + pad) : pad + c * (size + pad) + size]
        for r in range(rows)
        for c in range(columns)
    ]  # fmt: skip


def test_the_export_stage_writes_a_label_input_and_the_class_names(export_dir):
    summary = json.loads((export_dir / "export.json").read_text())
    assert (summary["conditioning"], summary["num_classes"]) == ("class", 10)
    assert summary["class_names"] == NAMES
    for part, outputs in (("generator", ["images"]), ("mapping", ["w", "w_centre"])):
        model = onnx.load(str(export_dir / f"{part}.onnx"))
        assert [node.name for node in model.graph.input] == ["z", "label"], part
        assert [node.name for node in model.graph.output] == outputs, part
        props = {prop.key: prop.value for prop in model.metadata_props}
        assert json.loads(props["class_names"]) == NAMES and props["num_classes"] == "10"
        assert props["conditioning"] == "class"
    extra = {"genlab.json": ""}
    torch.jit.load(str(export_dir / "generator.torchscript.pt"), _extra_files=extra)
    assert json.loads(json.loads(extra["genlab.json"])["class_names"]) == NAMES
    # the sample grid: balanced classes, one per column (4 images asked -> a row of all 10)
    assert pixels(export_dir / "samples.png").shape == (2 + 34, 2 + 10 * 34)


def test_list_classes(export_dir, unconditional, capsys):
    code, out, _ = run_cli(
        ["generate", str(export_dir / "generator.onnx"), "--list-classes"], capsys
    )
    assert code == 0
    assert out.splitlines() == [f"{i}\t{name}" for i, name in enumerate(NAMES)]
    code, out, _ = run_cli(["generate", str(unconditional), "--list-classes"], capsys)
    assert code == 0 and "unconditional: it has no classes" in out


def test_class_by_index_or_name_is_the_generators_own_output_for_that_class(
    export_dir, tmp_path, capsys
):
    by_index, by_name, other = tmp_path / "7", tmp_path / "name", tmp_path / "3"
    assert generate(export_dir, by_index, "--seeds", "0-2", "--class", "7", capsys=capsys)[0] == 0
    assert generate(export_dir, by_name, "--seeds", "0-2", "--class", SEVEN, capsys=capsys)[0] == 0
    assert generate(export_dir, other, "--seeds", "0-2", "--class", "3", capsys=capsys)[0] == 0
    network, _ = load_generator(export_dir.parent / "run/generator.safetensors")
    for seed in range(3):
        name = f"seed_{seed:06d}.png"
        image = pixels(by_index / name)
        assert np.array_equal(image, pixels(by_name / name))
        with torch.no_grad():
            own = network(torch.from_numpy(latent(seed, network.latent_dim)), torch.tensor([7]))
        assert np.abs(image - to_uint8(own[0].numpy())[0]).max() <= 1
        assert np.abs(image - pixels(other / name)).max() > 8, "class 3 is another image"
        found = read_provenance(by_index / name)
        assert (found["class"], found["class_index"], found["seed"]) == (SEVEN, "7", str(seed))
    script = tmp_path / "script"
    argv = ["generate", str(export_dir / "generator.torchscript.pt"), "--trust-torchscript"]
    argv += ["--out", str(script), "--seeds", "0", "--class", "7"]
    assert run_cli(argv, capsys)[0] == 0
    assert (
        np.abs(pixels(script / "seed_000000.png") - pixels(by_index / "seed_000000.png")).max() <= 1
    )
    code, out, _ = run_cli(["verify", str(by_index / "seed_000000.png")], capsys)
    assert code == 0 and f"class: {SEVEN}" in out and "class_index: 7" in out


def test_per_class_folders_are_named_safely(export_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert generate(export_dir, out, "--per-class", "2", capsys=capsys)[0] == 0
    folders = sorted(p.name for p in out.iterdir())
    assert folders == ["0-zero", "1-one", "2-two", "3-three", "4-four", "5-five", "6-six",
                       "7-seven", "8-eight", "9-nine"]  # fmt: skip
    for folder in out.iterdir():
        assert sorted(p.name for p in folder.iterdir()) == ["seed_000000.png", "seed_000001.png"]
    assert read_provenance(out / "7-seven/seed_000001.png")["class"] == SEVEN
    alone = tmp_path / "alone"
    assert generate(export_dir, alone, "--seeds", "1", "--class", "7", capsys=capsys)[0] == 0
    assert np.array_equal(
        pixels(alone / "seed_000001.png"), pixels(out / "7-seven/seed_000001.png")
    )
    # with --class: that class's folder only
    one = tmp_path / "one"
    assert generate(export_dir, one, "--per-class", "1", "--class", "3", capsys=capsys)[0] == 0
    assert [p.name for p in one.iterdir()] == ["3-three"]


def test_balanced_classes_without_class(export_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert generate(export_dir, out, "--seeds", "0-11", "--grid", capsys=capsys)[0] == 0
    for seed in range(12):
        assert read_provenance(out / f"seed_{seed:06d}.png")["class_index"] == str(seed % 10)
    single = tmp_path / "single"
    assert generate(export_dir, single, "--seeds", "11", "--class", "1", capsys=capsys)[0] == 0
    assert np.array_equal(pixels(single / "seed_000011.png"), pixels(out / "seed_000011.png"))
    assert pixels(out / "grid.png").shape[1] == 2 + 10 * 34, "one class per column"


def test_interpolate_psi_and_mix_keep_the_class(export_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--seeds", "0,1", "--class", "7", "--interpolate", "0", "1", "--steps", "3"]
    assert generate(export_dir, out, *argv, "--mix", "0", "1", "--psi", "1", capsys=capsys)[0] == 0
    seed_0, seed_1 = pixels(out / "seed_000000.png"), pixels(out / "seed_000001.png")
    path = tiles(pixels(out / "interpolation_0_1.png"), 32)
    assert len(path) == 3
    assert np.abs(path[0] - seed_0).max() <= 1 and np.abs(path[-1] - seed_1).max() <= 1
    assert read_provenance(out / "interpolation_0_1.png")["class"] == SEVEN
    mixed = tiles(pixels(out / "mix_0_1.png"), 32)
    assert np.abs(mixed[0] - seed_1).max() <= 1 and np.abs(mixed[-1] - seed_0).max() <= 1
    assert read_provenance(out / "mix_0_1.png")["class_index"] == "7"

    # psi 0 is the class's own centre: every seed the same image, another for another class
    centre = {}
    for label in ("7", "3"):
        folder = tmp_path / f"psi0-{label}"
        assert (
            generate(
                export_dir, folder, "--seeds", "0-1", "--psi", "0", "--class", label, capsys=capsys
            )[0]
            == 0
        )
        images = [pixels(folder / f"seed_00000{i}.png") for i in range(2)]
        assert np.array_equal(images[0], images[1])
        centre[label] = images[0]
    assert np.abs(centre["7"] - centre["3"]).max() > 8

    # without --class: one strip per class, a row each
    rows = tmp_path / "rows"
    assert generate(export_dir, rows, "--seeds", "0", "--interpolate", "0", "1", "--steps",
                    "3", capsys=capsys)[0] == 0  # fmt: skip
    strip = tiles(pixels(rows / "interpolation_0_1.png"), 32)
    assert len(strip) == 30 and np.abs(strip[7 * 3] - seed_0).max() <= 1


@pytest.mark.parametrize(
    ("which", "args", "says"),
    [
        ("plain", ["--class", "3"], "unconditional model: it has no classes"),
        ("plain", ["--per-class", "2"], "unconditional model: it has no classes"),
        ("conditional", ["--class", "seven"], "has no class 'seven': valid classes are 0 'zero'"),
        ("conditional", ["--class", "10"], "class index 10 is out of range"),
    ],
)
def test_a_class_the_model_does_not_have_is_a_one_line_error(
    export_dir, unconditional, tmp_path, capsys, which, args, says
):
    model = unconditional if which == "plain" else export_dir / "generator.onnx"
    code, _, err = run_cli(["generate", str(model), "--out", str(tmp_path / "o"), *args], capsys)
    assert code == EXIT_BAD_INPUT
    line = one_line(err)
    assert says in line, line
    if which == "conditional":
        assert "9 'nine'" in line
    assert not (tmp_path / "o").exists(), "nothing is written"


def test_the_issues_command_without_out_writes_under_generated(
    export_dir, tmp_path, capsys, monkeypatch
):
    """`genlab generate exports/<run>/generator.onnx --class 7 --seeds 0-15 --grid`, as the
    issue writes it: no --out, so generated/<the export folder's name> under the current
    directory, named in the output."""
    monkeypatch.chdir(tmp_path)
    argv = ["generate", str(export_dir / "generator.onnx"), "--class", "7", "--seeds", "0-15"]
    code, out, err = run_cli([*argv, "--grid"], capsys)
    assert code == 0, err
    folder = Path("generated") / export_dir.name
    assert str(folder) in out
    written = sorted(p.name for p in (tmp_path / folder).iterdir() if p.suffix == ".png")
    assert written == sorted([*(f"seed_{s:06d}.png" for s in range(16)), "grid.png"])
    assert read_provenance(tmp_path / folder / "seed_000003.png")["class_index"] == "7"
