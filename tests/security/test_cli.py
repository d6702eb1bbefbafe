"""The command-line tools on files from others: `genlab generate` and `genlab verify`.

Threats: a shared model file that runs code (TorchScript), an ONNX file that reads files beside
or outside itself (external data) or needs operators genlab never exports, metadata and
arguments whose sizes allocate or loop without end, and non-images handed to `genlab verify`.
Every hostile file is built here, for real; nothing of genlab is mocked.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from torch import nn

from genlab.provenance import read_provenance

from ..support.cli import one_line, run_cli

pytestmark = pytest.mark.timeout(120)

LATENT, W_DIM, NUM_WS, SIDE = 4, 3, 2, 8


# -- ONNX files built by hand: a generator, and StyleGAN-lite's mapping and synthesis halves --


def _save_onnx(path: Path, nodes, inputs, outputs, initializers, metadata) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {k: str(v) for k, v in metadata.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _tensor(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(array, name)


def _info(name: str, *shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _to_image_nodes(source: str, width: int) -> tuple[list, list]:
    """(B, width) -> MatMul -> (B, 1, SIDE, SIDE) in [-1, 1]."""
    rng = np.random.default_rng(width)
    weights = rng.normal(size=(width, SIDE * SIDE)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", [source, "to_pixels"], ["flat"]),
        helper.make_node("Reshape", ["flat", "image_shape"], ["raw"]),
        helper.make_node("Tanh", ["raw"], ["images"]),
    ]
    initializers = [
        _tensor("to_pixels", weights),
        _tensor("image_shape", np.array([-1, 1, SIDE, SIDE], dtype=np.int64)),
    ]
    return nodes, initializers


def write_generator(folder: Path, **metadata) -> Path:
    nodes, initializers = _to_image_nodes("z", LATENT)
    meta = {"latent_dim": LATENT, "run_id": "run-from-the-file", **metadata}
    return _save_onnx(
        folder / "generator.onnx",
        nodes,
        [_info("z", "batch", LATENT)],
        [_info("images", "batch", 1, SIDE, SIDE)],
        initializers,
        meta,
    )


def style_meta(w_avg=None, **overrides) -> dict[str, str]:
    w_avg = [0.1, -0.2, 0.3] if w_avg is None else w_avg
    meta = {
        "latent_dim": LATENT,
        "num_ws": NUM_WS,
        "w_dim": W_DIM,
        "w_avg": w_avg if isinstance(w_avg, str) else json.dumps(w_avg),
        "truncation_psi": 0.7,
    }
    return {**meta, **overrides}


def write_style_export(folder: Path, mapping_dim: int = W_DIM, **overrides) -> Path:
    """generator.onnx plus mapping.onnx (z -> w) and synthesis.onnx (ws -> images)."""
    generator = write_generator(folder)
    meta = style_meta(**overrides)
    to_w = np.random.default_rng(1).normal(size=(LATENT, mapping_dim)).astype(np.float32)
    _save_onnx(
        folder / "mapping.onnx",
        [helper.make_node("MatMul", ["z", "to_w"], ["w"])],
        [_info("z", "batch", LATENT)],
        [_info("w", "batch", mapping_dim)],
        [_tensor("to_w", to_w)],
        {**meta, "part": "mapping"},
    )
    nodes, initializers = _to_image_nodes("w_mean", W_DIM)
    mean = helper.make_node("ReduceMean", ["ws"], ["w_mean"], axes=[1], keepdims=0)
    _save_onnx(
        folder / "synthesis.onnx",
        [mean, *nodes],
        [_info("ws", "batch", NUM_WS, W_DIM)],
        [_info("images", "batch", 1, SIDE, SIDE)],
        initializers,
        {**meta, "part": "synthesis"},
    )
    return generator


def pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png")) if folder.exists() else []


def test_hand_built_exports_generate(tmp_path, capsys):
    """Row 19 (control): the hand-built files below are valid exports, so each refusal in this
    module is caused by the one hostile value it plants, not by a broken file."""
    generator = write_style_export(tmp_path / "export")
    out = tmp_path / "out"
    argv = ["generate", str(generator), "--out", str(out), "--seeds", "0-2", "--psi", "0.5"]
    code, _, err = run_cli([*argv, "--mix", "0", "1", "--interpolate", "0", "1"], capsys)
    assert code == 0, err
    assert len(pngs(out)) == 5
    assert read_provenance(out / "seed_000000.png")["run_id"] == "run-from-the-file"


# -- Row 2: TorchScript is a program ------------------------------------------------------------


class WritesFiles(nn.Module):
    """A 'generator' that writes a file of its choosing when loaded (its scripted __setstate__
    runs inside torch.jit.load) and another each time it is called, with the user's rights."""

    def __init__(self, on_load: str, on_call: str) -> None:
        super().__init__()
        self.on_load, self.on_call, self.side = on_load, on_call, SIDE

    @torch.jit.export
    def __getstate__(self) -> tuple[str, str, int, bool]:
        return (self.on_load, self.on_call, self.side, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, str, int, bool]) -> None:
        written = torch.from_file(state[0], shared=True, size=4, dtype=torch.uint8)
        written.fill_(76)  # b"LLLL" through the shared mapping
        self.on_load = state[0] + str(int(written.sum()))  # keeps the write from being elided
        self.on_call, self.side, self.training = state[1], state[2], state[3]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        written = torch.from_file(self.on_call, shared=True, size=6, dtype=torch.uint8)
        written.fill_(33)  # b"!!!!!!"
        return torch.zeros(z.shape[0], 1, self.side, self.side) + written[0].float() * 0


def write_hostile_torchscript(folder: Path) -> tuple[Path, Path, Path]:
    """(the .pt file, the file its loading writes, the file its forward writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "generator.torchscript.pt"
    on_load, on_call = folder.parent / "written-on-load", folder.parent / "written-on-call"
    claims = {"latent_dim": str(LATENT), "run_id": "made-up-run", "model": "dcgan"}
    scripted = torch.jit.script(WritesFiles(str(on_load), str(on_call)))
    torch.jit.save(scripted, str(path), _extra_files={"genlab.json": json.dumps(claims)})
    on_load.unlink(missing_ok=True)  # scripting ran nothing, but be sure the test starts clean
    return path, on_load, on_call


def test_torchscript_is_not_loaded_without_the_trust_flag(tmp_path, capsys):
    """Row 2: a TorchScript file runs its own code when loaded and when called; a shared
    generator.torchscript.pt wrote files of the attacker's choosing and stamped PNGs with a
    made-up run id. Without --trust-torchscript nothing from the file may run."""
    evil, on_load, on_call = write_hostile_torchscript(tmp_path / "shared")
    out = tmp_path / "out"
    code, _, err = run_cli(["generate", str(evil), "--out", str(out), "--seeds", "0"], capsys)
    assert code == 2
    line = one_line(err)
    assert str(evil) in line and "--trust-torchscript" in line and "generator.onnx" in line
    assert not on_load.exists() and not on_call.exists(), "the file's code ran"
    assert pngs(out) == []


class Plain(nn.Module):
    """A harmless TorchScript generator, to test what is read from the file's genlab.json."""

    def __init__(self) -> None:
        super().__init__()
        self.side = SIDE

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(z.shape[0], 1, self.side, self.side)


@pytest.mark.parametrize(
    "claims",
    ['["latent_dim", 4]', "{not json", json.dumps({"latent_dim": "4", "w": "x" * 300_000})],
    ids=["list", "not json", "oversized"],
)
def test_torchscript_metadata_is_checked_even_when_trusted(tmp_path, capsys, claims):
    """Row 2: the metadata inside a TorchScript file (genlab.json) is read by one parser, with
    the same checks as ONNX metadata: a list, broken JSON or a 300 KB entry is refused with one
    line naming the file, not a traceback or a flood."""
    path = tmp_path / "shared" / "generator.torchscript.pt"
    path.parent.mkdir()
    torch.jit.save(torch.jit.script(Plain()), str(path), _extra_files={"genlab.json": claims})
    out = tmp_path / "out"
    argv = ["generate", str(path), "--out", str(out), "--seeds", "0", "--trust-torchscript"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    line = one_line(err)
    assert "genlab.json" in line and str(path) in line and len(line) < 500, line
    assert pngs(out) == []


def test_trust_flag_runs_the_file_as_code(tmp_path, capsys):
    """Row 2: --trust-torchscript is the explicit opt-in, and its help says what it means: the
    file runs as a program (here it writes its files) and its provenance claims are copied."""
    help_code, help_text, _ = run_cli(["generate", "--help"], capsys)
    assert help_code == 0
    flat_help = " ".join(help_text.split())
    assert "--trust-torchscript" in flat_help and "run with your permissions" in flat_help

    evil, on_load, on_call = write_hostile_torchscript(tmp_path / "shared")
    out = tmp_path / "out"
    argv = ["generate", str(evil), "--out", str(out), "--seeds", "0", "--trust-torchscript"]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert on_load.read_bytes() == b"LLLL" and on_call.read_bytes() == b"!!!!!!"
    assert read_provenance(out / "seed_000000.png")["run_id"] == "made-up-run"


# -- Row 2: what an ONNX file may make onnxruntime do -----------------------------------------


def write_external_data_generator(folder: Path, location: str) -> Path:
    """images = zeros(z) + W, where W's 256 bytes are read from ``location`` at load time."""
    leaked = TensorProto()
    leaked.name, leaked.data_type = "W", TensorProto.FLOAT
    leaked.dims.extend([1, 1, SIDE, SIDE])
    leaked.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("length", str(4 * SIDE * SIDE))):
        entry = leaked.external_data.add()
        entry.key, entry.value = key, value
    nodes = [
        helper.make_node("MatMul", ["z", "zeros"], ["flat"]),
        helper.make_node("Reshape", ["flat", "image_shape"], ["raw"]),
        helper.make_node("Add", ["raw", "W"], ["images"]),
    ]
    initializers = [
        leaked,
        _tensor("zeros", np.zeros((LATENT, SIDE * SIDE), dtype=np.float32)),
        _tensor("image_shape", np.array([-1, 1, SIDE, SIDE], dtype=np.int64)),
    ]
    return _save_onnx(
        folder / "generator.onnx",
        nodes,
        [_info("z", "batch", LATENT)],
        [_info("images", "batch", 1, SIDE, SIDE)],
        initializers,
        {"latent_dim": LATENT},
    )


@pytest.mark.parametrize("where", ["beside", "parent", "absolute"])
def test_onnx_with_external_data_is_refused(tmp_path, capsys, where):
    """Row 2: an ONNX initializer may name an 'external data' file that onnxruntime reads when
    the model loads: bytes from beside or outside the export would become pixels. genlab never
    writes external data, so any file that references it is refused, whatever the
    onnxruntime version (older ones did not confine the path)."""
    secret = np.arange(SIDE * SIDE, dtype=np.float32).tobytes()
    (tmp_path / "secret.bin").write_bytes(secret)
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(secret)
    location = {
        "beside": "weights.bin",
        "parent": "../secret.bin",
        "absolute": str(tmp_path / "secret.bin"),
    }[where]
    model = write_external_data_generator(folder, location)
    out = tmp_path / "out"
    code, _, err = run_cli(["generate", str(model), "--out", str(out), "--seeds", "0"], capsys)
    assert code == 2
    line = one_line(err)
    assert "external data" in line and "generator.onnx" in line and location in line
    assert pngs(out) == []


def test_onnx_with_a_foreign_operator_domain_is_refused(tmp_path, capsys):
    """Row 2: a node in a custom operator domain would run code from a custom-op library if one
    were registered; genlab's exports only use the standard ONNX operators, so say so."""
    generator = write_generator(tmp_path / "shared")
    model = onnx.load(str(generator))
    model.graph.node[2].domain = "com.example.runs.anything"
    model.opset_import.append(helper.make_opsetid("com.example.runs.anything", 1))
    onnx.save(model, str(generator))
    code, _, err = run_cli(["generate", str(generator), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    line = one_line(err)
    assert "com.example.runs.anything" in line and "operator domain" in line


def _external_tensor(location: str) -> TensorProto:
    tensor = TensorProto()
    tensor.name, tensor.data_type = "leak", TensorProto.FLOAT
    tensor.dims.extend([1, 1, SIDE, SIDE])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("length", str(4 * SIDE * SIDE))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _with_local_function(generator: Path, body: list) -> None:
    """Route the generator's output through a local function (domain "", like the standard
    operators) whose nodes are ``body``: x -> y."""
    model = onnx.load(str(generator))
    model.graph.node[-1].output[0] = "pre_images"
    model.graph.node.append(helper.make_node("Through", ["pre_images"], ["images"]))
    opsets = [helper.make_opsetid("", 17)]
    model.functions.append(helper.make_function("", "Through", ["x"], ["y"], body, opsets))
    onnx.save(model, str(generator))


def test_onnx_local_function_with_external_data_is_refused(tmp_path, capsys):
    """Row 2: a model's local functions (model.functions) hold nodes too: a Constant inside one
    could name an external data file (here ../secret.bin) that was never checked. Every
    function's nodes now go through the same walk as the graph's."""
    (tmp_path / "secret.bin").write_bytes(np.ones(SIDE * SIDE, dtype=np.float32).tobytes())
    generator = write_generator(tmp_path / "shared")
    constant = helper.make_node("Constant", [], ["c"], value=_external_tensor("../secret.bin"))
    _with_local_function(generator, [constant, helper.make_node("Add", ["x", "c"], ["y"])])
    out = tmp_path / "out"
    code, _, err = run_cli(["generate", str(generator), "--out", str(out), "--seeds", "0"], capsys)
    assert code == 2
    line = one_line(err)
    assert "external data" in line and "../secret.bin" in line, line
    assert pngs(out) == []


def test_onnx_foreign_domain_inside_a_local_function_subgraph_is_refused(tmp_path, capsys):
    """Row 2: a custom-domain node hidden in a subgraph (an If branch) of a local function was
    not seen by the operator-domain check, which only read the functions' top-level nodes."""
    generator = write_generator(tmp_path / "shared")
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["b"], domain="com.example.hidden")],
        "branch",
        [],
        [_info("b", "batch", 1, SIDE, SIDE)],
    )
    body = [
        helper.make_node("Constant", [], ["yes"], value=helper.make_tensor("t", 9, [], [True])),
        helper.make_node("If", ["yes"], ["y"], then_branch=branch, else_branch=branch),
    ]
    _with_local_function(generator, body)
    code, _, err = run_cli(["generate", str(generator), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    line = one_line(err)
    assert "com.example.hidden" in line and "operator domain" in line, line


def test_metadata_from_the_file_is_printed_escaped(tmp_path, capsys):
    """Row 19 (control): a metadata value is echoed in the error; terminal escape sequences in
    it (which could rewrite what the user sees) are shown escaped, as `genlab verify` does."""
    generator = write_generator(tmp_path / "shared", latent_dim="4\x1b[2J\x1b[32mOK")
    code, _, err = run_cli(["generate", str(generator), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    line = one_line(err)
    assert "\x1b" not in line and "\\x1b[2J" in line, line


# -- Row 19: sizes from the file's metadata -------------------------------------------------


@pytest.mark.parametrize(
    "value", ["1000000000000", "0", "-3", "4.5", "four", "", "1" * 5000], ids=lambda v: v[:16]
)
def test_latent_dim_from_metadata_is_range_checked(tmp_path, capsys, value):
    """Row 19: latent_dim is read from the file and sizes the latent tensor: 10**12 allocated
    until memory ran out, a negative or non-integer value gave a traceback."""
    generator = write_generator(tmp_path / "shared", latent_dim=value)
    out = tmp_path / "out"
    code, _, err = run_cli(["generate", str(generator), "--out", str(out), "--seeds", "0"], capsys)
    assert code == 2
    line = one_line(err)
    assert "latent_dim" in line and "generator.onnx" in line
    assert len(line) < 400, "a hostile value is not echoed in full"
    assert pngs(out) == []


STYLE_CASES = {
    "num_ws": {"num_ws": "1000000000000"},
    "num_ws ": {"num_ws": "0"},
    "w_dim": {"w_dim": "99999999"},
    "w_avg": {"w_avg": [0.1, 0.2]},  # length != w_dim
    "w_avg ": {"w_avg": [float("nan"), 0.0, 0.0]},
    "w_avg  ": {"w_avg": "[1, 2,"},  # not JSON
    "truncation_psi": {"truncation_psi": "nan"},
    "truncation_psi ": {"truncation_psi": "1e999"},
}


@pytest.mark.parametrize("case", list(STYLE_CASES))
def test_style_metadata_is_range_checked(tmp_path, capsys, case):
    """Row 19: num_ws sizes np.repeat and the mixing loop, w_avg and the truncation psi enter
    every image: a hostile value allocated terabytes, broke broadcasting with a traceback, or
    wrote NaN images as if they were fine."""
    generator = write_style_export(tmp_path / "shared", **STYLE_CASES[case])
    out = tmp_path / "out"
    argv = ["generate", str(generator), "--out", str(out), "--seeds", "0", "--mix", "0", "1"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    line = one_line(err)
    assert case.strip() in line and "mapping.onnx" in line
    assert pngs(out) == []


def test_w_avg_must_match_the_mapping_output(tmp_path, capsys):
    """Row 19: w_avg's length is a claim; the mapping graph's real output size must agree."""
    generator = write_style_export(tmp_path / "shared", mapping_dim=5)
    out = tmp_path / "out"
    argv = ["generate", str(generator), "--out", str(out), "--psi", "0.5", "--seeds", "0"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    line = one_line(err)
    assert "w_avg" in line and "mapping" in line
    assert pngs(out) == []


def test_oversized_generator_output_is_refused(tmp_path, capsys):
    """Row 19: the image size is whatever the graph outputs; a 4100x4100 'image' per seed is
    refused before any PNG is written."""
    side = 4100
    generator = write_flat_generator(tmp_path / "shared", side)
    out = tmp_path / "out"
    code, _, err = run_cli(["generate", str(generator), "--out", str(out), "--seeds", "0"], capsys)
    assert code == 2
    assert "4100" in one_line(err)
    assert pngs(out) == []


# -- Row 19: bounded command-line arguments ---------------------------------------------------


def test_a_billion_seeds_fail_fast(tmp_path, capsys):
    """Row 19: --seeds 0-1000000000 built a billion-element list (tens of GiB) before anything
    else happened; it must be refused at once, saying how to split the work."""
    generator = write_generator(tmp_path / "shared")
    out = tmp_path / "out"
    started = time.perf_counter()
    argv = ["generate", str(generator), "--out", str(out), "--seeds", "0-1000000000"]
    code, _, err = run_cli(argv, capsys)
    elapsed = time.perf_counter() - started
    assert code == 2
    assert elapsed < 0.5, f"took {elapsed:.2f} s"
    assert "10000" in err.replace(",", "") and "split" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra",
    [
        ["--seeds", "0-9999,10000"],  # 10,001 seeds in pieces
        ["--seeds", str(2**32)],
        ["--interpolate", "0", str(2**32)],
        ["--interpolate", "0", "1", "--steps", "257"],
        ["--interpolate", "0", "1", "--steps", "1000000000"],
        ["--interpolate", "0", "1", "--steps", "1"],
        ["--psi", "nan"],
        ["--psi", "inf"],
        ["--mix", "-1", "2"],
    ],
    ids=lambda extra: " ".join(extra),
)
def test_generate_arguments_are_bounded(tmp_path, capsys, extra):
    """Row 19: seed counts, seed values, --steps and --psi are checked when parsed: a too large
    request is refused in well under a second instead of looping or allocating for hours, and
    a NaN psi no longer writes NaN images as if they were fine."""
    generator = write_style_export(tmp_path / "shared")
    out = tmp_path / "out"
    started = time.perf_counter()
    code, _, err = run_cli(["generate", str(generator), "--out", str(out), *extra], capsys)
    assert code == 2, err
    assert time.perf_counter() - started < 0.5
    assert "Traceback" not in err and err.strip()
    assert pngs(out) == []


def write_flat_generator(folder: Path, side: int) -> Path:
    """A 1-channel generator of side x side mid-gray images: big outputs at almost no cost."""
    nodes = [
        helper.make_node("MatMul", ["z", "to_one"], ["one"]),
        helper.make_node("Reshape", ["one", "pixel_shape"], ["pixel"]),
        helper.make_node("Expand", ["pixel", "big_shape"], ["images"]),
    ]
    initializers = [
        _tensor("to_one", np.zeros((LATENT, 1), dtype=np.float32)),
        _tensor("pixel_shape", np.array([-1, 1, 1, 1], dtype=np.int64)),
        _tensor("big_shape", np.array([1, 1, side, side], dtype=np.int64)),
    ]
    return _save_onnx(
        folder / "generator.onnx",
        nodes,
        [_info("z", "batch", LATENT)],
        [_info("images", "batch", 1, side, side)],
        initializers,
        {"latent_dim": LATENT},
    )


def test_generate_holds_one_image_at_a_time(tmp_path, capsys):
    """Row 19: every image of up to 10,000 seeds was generated and concatenated (float32)
    before the first PNG was written: 4096x4096 RGB images make that terabytes. Images are now
    written one seed at a time: 100 seeds of 1 MB each peak far below the 200 MB of before."""
    import tracemalloc

    generator = write_flat_generator(tmp_path / "shared", 512)
    out = tmp_path / "out"
    tracemalloc.start()
    try:
        code, _, err = run_cli(
            ["generate", str(generator), "--out", str(out), "--seeds", "0-99"], capsys
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0, err
    assert len(pngs(out)) == 100
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MiB traced"


def test_a_grid_over_the_pixel_limit_is_refused_before_writing(tmp_path, capsys):
    """Row 19: --grid tiles every seed into one PNG; 100 images of 1024x1024 make a
    105-megapixel grid (more than `genlab verify` would read back). It is refused after the
    first image, before any file is written, saying how to fit."""
    generator = write_flat_generator(tmp_path / "shared", 1024)
    out = tmp_path / "out"
    started = time.perf_counter()
    argv = ["generate", str(generator), "--out", str(out), "--seeds", "0-99", "--grid"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    line = one_line(err)
    assert "--grid" in line and "fewer seeds" in line, line
    assert pngs(out) == []
    assert time.perf_counter() - started < 5


def test_grids_are_the_pixels_make_grid_gave(tmp_path, capsys):
    """Row 19 (control): grids are now built from 8-bit images, one tile at a time; their
    pixels are those of the float batch tiled by torchvision's make_grid (save_grid)."""
    from genlab.generate import ExportedGenerator
    from genlab.provenance import save_grid

    generator = write_style_export(tmp_path / "shared")
    out = tmp_path / "out"
    argv = ["generate", str(generator), "--out", str(out), "--seeds", "0-4", "--grid"]
    code, _, err = run_cli([*argv, "--mix", "1", "2", "--interpolate", "0", "3"], capsys)
    assert code == 0, err
    loaded = ExportedGenerator.load(generator)
    expected = {
        "grid.png": (np.stack([loaded.image(seed) for seed in range(5)]), None),
        "mix_1_2.png": (np.stack(list(loaded.mix(1, 2))), NUM_WS + 1),
        "interpolation_0_3.png": (np.stack(list(loaded.interpolate(0, 3, 8))), 8),
    }
    for name, (batch, nrow) in expected.items():
        save_grid(batch, tmp_path / name, {}, nrow=nrow)
        with Image.open(out / name) as got, Image.open(tmp_path / name) as want:
            assert np.array_equal(np.asarray(got), np.asarray(want)), name


def test_cli_and_api_share_one_set_of_argument_checks():
    """Row 19: seeds, --steps and --psi were checked twice (CLI and API) with limits that could
    drift apart; the CLI now calls the API's checks, so both refuse the same values."""
    from genlab import generate
    from genlab.checks import MAX_LATENT_DIM
    from genlab.errors import GenerateError
    from genlab.models.generator_file import ARGUMENTS

    assert generate.parse_seeds("0-2,7") == [0, 1, 2, 7]
    for call in (
        lambda: generate.parse_seeds(f"0-{generate.MAX_SEEDS}"),
        lambda: generate.check_seed(-1),
        lambda: generate.check_steps(generate.MAX_STEPS + 1),
        lambda: generate.check_psi(math.nan),
    ):
        with pytest.raises(GenerateError):
            call()
    assert ARGUMENTS["latent_dim"].high == ARGUMENTS["w_dim"].high == MAX_LATENT_DIM


# -- Row 17: `genlab verify` on things that are not images ------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bomb_png(path: Path, side: int) -> Path:
    """A 1-bit PNG of side x side black pixels: a few KB on disk, side**2 pixels decoded."""
    row = b"\x00" * (1 + math.ceil(side / 8))
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )
    return path


def _bad_file(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """One hostile input for `genlab verify` and a word its error line must contain."""
    if kind == "text":
        path = tmp_path / "notes.txt"
        path.write_text("not an image\n")
        return path, "not a PNG or JPEG"
    if kind == "empty":
        path = tmp_path / "empty.png"
        path.write_bytes(b"")
        return path, "empty"
    if kind == "directory":
        path = tmp_path / "folder.png"
        path.mkdir()
        return path, "directory"
    if kind == "missing":
        return tmp_path / "nowhere.png", "no such file"
    if kind == "truncated":
        path = tmp_path / "truncated.png"
        whole = tmp_path / "whole.png"
        pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(whole)
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        return path, "truncated"
    if kind == "gif named png":
        path = tmp_path / "animation.png"
        Image.new("RGB", (64, 64), (10, 20, 30)).save(path, format="GIF")
        return path, "GIF"
    if kind == "bomb":  # 400 megapixels in ~50 KB: over Pillow's own hard limit
        return write_bomb_png(tmp_path / "bomb.png", 20_000), "pixels"
    if kind == "large":  # 67.2 megapixels: under Pillow's limit, over genlab verify's
        return write_bomb_png(tmp_path / "large.png", 8_200), "pixels"
    raise AssertionError(kind)


BAD_KINDS = ["text", "empty", "directory", "missing", "truncated", "gif named png", "bomb", "large"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_verify_names_each_bad_file_in_one_line(tmp_path, capsys, kind):
    """Row 17: a non-image, a truncated or empty file, a folder or a decompression bomb gave a
    traceback and exit 1, the code that also means "not machine-generated". Now: exit 2 and
    one line naming the file and the reason; a bomb is refused from its header, undecoded."""
    path, reason = _bad_file(tmp_path, kind)
    started = time.perf_counter()
    code, out, err = run_cli(["verify", str(path)], capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"genlab verify: {path}") and reason in line, line
    assert out == ""
    assert time.perf_counter() - started < 5


def test_verify_reports_good_files_beside_bad_ones(tmp_path, capsys):
    """Row 17: one bad file does not hide the reports of the good ones in the same call; each
    bad file has its own line, and --json stays parseable on stdout."""
    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(plain)
    bad = [_bad_file(tmp_path, kind)[0] for kind in ("text", "truncated", "bomb")]
    code, out, err = run_cli(["verify", str(bad[0]), str(plain), *map(str, bad[1:])], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert [line.split(":")[1].strip().split()[0] for line in lines] == [str(p) for p in bad]
    assert f"{plain}:" in out and "NOT recognised" in out

    code, out, err = run_cli(["verify", "--json", str(plain), str(bad[0])], capsys)
    assert code == 2
    assert [report["path"] for report in json.loads(out)] == [str(plain)]
    assert len(err.strip().splitlines()) == 1


def test_verify_prints_no_terminal_escapes_from_a_file(tmp_path, capsys):
    """Row 17: provenance text comes from the file; control characters in it (terminal escape
    sequences that can rewrite what the user sees) are shown escaped, not sent to the terminal."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("genlab:run_id", "abc\x1b[2J\x1b[31mGENERATED by genlab")
    path = tmp_path / "escapes.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(path, pnginfo=info)
    code, out, _ = run_cli(["verify", str(path)], capsys)
    assert code == 1
    assert "\x1b" not in out and "\\x1b[2J" in out


def test_verify_console_script_shows_no_traceback(tmp_path):
    """Row 17: the installed entry point, as a user runs it: exit 2, one line, no traceback."""
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = subprocess.run(
        [sys.executable, "-m", "genlab.cli", "verify", str(notes)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"genlab verify: {notes} is not a PNG or JPEG file by its content (no image format); "
        "genlab decodes PNG or JPEG only: convert it, or remove it"
    ]


def test_verify_opens_each_file_once_with_png_and_jpeg_decoders_only(tmp_path, capsys, monkeypatch):
    """Row 17: `genlab verify` let every Pillow plugin parse the header (formats= unset), then
    reopened the path to read the provenance, decoding twice, without the checks the second
    time (and the file could be swapped in between). Each file is now opened once, with the
    PNG and JPEG decoders only, and the provenance comes from that same open image."""
    from genlab.provenance import save_png

    labelled = save_png(np.zeros((3, 32, 32), np.float32), tmp_path / "made.png", {"seed": "1"})
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 32), (5, 6, 7)).save(photo)
    opened: list[tuple] = []
    real_open = Image.open

    def recording_open(fp, mode="r", formats=None):
        opened.append((Path(fp).name, tuple(formats or ())))
        return real_open(fp, mode, formats)

    monkeypatch.setattr(Image, "open", recording_open)
    code, out, err = run_cli(["verify", str(labelled), str(photo)], capsys)
    assert code == 1, err  # the JPEG carries no label
    assert "GENERATED by genlab" in out and "seed: 1" in out
    assert [name for name, _ in opened] == ["made.png", "photo.jpg"], opened
    assert all(formats and set(formats) <= {"PNG", "JPEG", "MPO"} for _, formats in opened)


def test_verify_and_datasets_read_the_first_frame_of_an_mpo(tmp_path, capsys):
    """Row 17 (control): an MPO (the multi-picture JPEG many phones write) opens through the
    JPEG decoder; `genlab verify` and datasets share one format list and both read its first
    frame (the primary image)."""
    from genlab.data.images import decode_image

    path = tmp_path / "phone.jpg"
    first, preview = Image.new("RGB", (32, 32), (200, 10, 10)), Image.new("RGB", (8, 8))
    first.save(path, format="MPO", save_all=True, append_images=[preview])
    code, out, err = run_cli(["verify", str(path)], capsys)
    assert code == 1 and err == "", err
    assert "NOT recognised" in out
    image = decode_image(path, mode="RGB", max_pixels=10_000, background=(0, 0, 0))
    assert image.size == (32, 32)
