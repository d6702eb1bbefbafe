"""A class-conditional generator exports with a second input, ``label`` (int64 class indices,
dynamic batch), in ONNX and TorchScript, for every family; the parity checks feed batches of
mixed classes; StyleGAN-lite's mapping half takes (z, label) and carries the class centres that
truncation pulls towards; an unconditional export keeps its single input ``z``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from genlab.errors import ExportError
from genlab.export.onnx import export_onnx, read_onnx_metadata
from genlab.export.style_parts import export_style_parts
from genlab.export.torchscript import export_torchscript
from genlab.generate import ExportedGenerator, latent
from genlab.networks.conditioning import ClassEmbedding
from genlab.networks.dcgan import DCGANGenerator
from genlab.networks.stylegan import StyleGANGenerator
from genlab.networks.vae import ConvDecoder

LATENT, CLASSES = 8, 10
NAMES = [f"class {i}" for i in range(CLASSES)]


def tiny(family: str, num_classes: int = CLASSES) -> torch.nn.Module:
    """A small network of ``family`` whose classes make a visible difference: the class
    embeddings are redrawn (cBN's initial per-class affine is almost the same for every class)."""
    torch.manual_seed(0)
    network = {
        "dcgan": lambda: DCGANGenerator(
            latent_dim=LATENT, base_channels=4, image_size=16, num_classes=num_classes
        ),
        "vae": lambda: ConvDecoder(
            latent_dim=LATENT, base_channels=4, image_size=16, num_classes=num_classes
        ),
        "stylegan": lambda: StyleGANGenerator(
            latent_dim=LATENT,
            w_dim=16,
            mapping_depth=2,
            image_size=8,
            base_channels=4,
            max_channels=8,
            truncation_psi=0.7,
            num_classes=num_classes,
        ),
    }[family]()
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, ClassEmbedding):
                module.weight.normal_(1.0, 0.5)
        if num_classes and hasattr(network, "w_avg_class"):
            network.w_avg_class.normal_()  # class centres apart from each other and from w_avg
            network.w_avg.normal_()
    return network.eval()


def eager(network: torch.nn.Module, z: np.ndarray, labels: list[int]) -> np.ndarray:
    with torch.no_grad():
        return network(torch.from_numpy(z), torch.tensor(labels)).numpy()


@pytest.mark.parametrize("family", ["dcgan", "vae", "stylegan"])
def test_conditional_generator_exports_a_label_input_with_parity(family, tmp_path):
    network = tiny(family)
    onnx_result = export_onnx(network, LATENT, tmp_path / "g.onnx", parity_batch=4)
    script_result = export_torchscript(network, LATENT, tmp_path / "g.pt", parity_batch=4)
    assert onnx_result["max_abs_diff"] < 1e-4 and script_result["max_abs_diff"] < 1e-4

    model = onnx.load(str(tmp_path / "g.onnx"))
    inputs = {node.name: node.type.tensor_type for node in model.graph.input}
    assert list(inputs) == ["z", "label"]
    assert inputs["label"].elem_type == onnx.TensorProto.INT64
    assert [d.dim_param for d in inputs["label"].shape.dim] == ["batch"]

    # mixed classes in one batch of a size the trace never saw: each row is its own class's
    z = np.random.default_rng(1).standard_normal((5, LATENT)).astype(np.float32)
    labels = [7, 3, 0, 9, 7]
    want = eager(network, z, labels)
    session = onnxruntime.InferenceSession(str(tmp_path / "g.onnx"))
    (got,) = session.run(None, {"z": z, "label": np.asarray(labels, dtype=np.int64)})
    script = torch.jit.load(str(tmp_path / "g.pt"))
    with torch.no_grad():
        scripted = script(torch.from_numpy(z), torch.tensor(labels)).numpy()
    assert np.abs(got - want).max() < 1e-4 and np.abs(scripted - want).max() < 1e-4
    # the label is a live input, not a constant frozen at trace time: one z, two classes
    same_z = np.repeat(z[:1], 2, axis=0)
    (pair,) = session.run(None, {"z": same_z, "label": np.asarray([7, 3], dtype=np.int64)})
    assert np.abs(pair[0] - pair[1]).max() > 1e-3


@pytest.mark.parametrize("family", ["dcgan", "stylegan"])
def test_unconditional_export_keeps_one_input(family, tmp_path):
    network = tiny(family, num_classes=0)
    export_onnx(network, LATENT, tmp_path / "g.onnx", parity_batch=4)
    export_torchscript(network, LATENT, tmp_path / "g.pt", parity_batch=4)
    session = onnxruntime.InferenceSession(str(tmp_path / "g.onnx"))
    assert [node.name for node in session.get_inputs()] == ["z"]
    z = torch.randn(3, LATENT)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(tmp_path / "g.pt"))(z), network(z), atol=1e-5)


def test_a_graph_that_loses_the_label_fails_the_parity_check(tmp_path):
    """The parity batches hold several classes: a graph frozen to the traced labels (here: the
    label only read through a Python int, which tracing turns into a constant) is refused."""

    class FrozenLabel(torch.nn.Module):
        num_classes = CLASSES

        def __init__(self) -> None:
            super().__init__()
            self.inner = tiny("dcgan")

        def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
            first = int(label[0])  # data-dependent: traced as a constant
            return self.inner(z, torch.full_like(label, first))

    with pytest.raises(ExportError, match="does not reproduce"):
        export_torchscript(FrozenLabel(), LATENT, tmp_path / "g.pt", parity_batch=4)
    assert not (tmp_path / "g.pt").exists()


def test_stylegan_mapping_takes_labels_and_truncates_to_the_class_centre(tmp_path):
    """generate's --psi on a conditional export pulls towards the class's own centre: the
    exported halves give what the eager generator gives with that truncation psi."""
    network = tiny("stylegan")
    metadata = {
        "latent_dim": str(LATENT),
        "conditioning": "class",
        "num_classes": str(CLASSES),
        "class_names": json.dumps(NAMES),
    }
    export_onnx(network, LATENT, tmp_path / "generator.onnx", metadata=metadata, parity_batch=4)
    report = export_style_parts(
        network, tmp_path, metadata, export_onnx, export_torchscript, parity_batch=4
    )
    assert report["mapping"]["onnx_max_abs_diff"] < 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "mapping.onnx"))
    assert [n.name for n in session.get_inputs()] == ["z", "label"]
    assert [n.name for n in session.get_outputs()] == ["w", "w_centre"]
    assert read_onnx_metadata(tmp_path / "mapping.onnx")["class_names"] == json.dumps(NAMES)

    exported = ExportedGenerator.load(tmp_path / "generator.onnx")
    assert exported.class_names == NAMES
    for psi, label in [(0.5, 7), (0.0, 3), (1.0, 2)]:
        network.truncation_psi = psi
        want = eager(network, latent(11, LATENT), [label])[0]
        got = exported.image(11, psi=psi, label=label)
        assert np.abs(got - want).max() < 1e-4, (psi, label)
    # psi = 0 is the class centre itself: the same image for every seed, another per class
    centre_7 = exported.image(1, psi=0.0, label=7)
    assert np.abs(exported.image(2, psi=0.0, label=7) - centre_7).max() < 1e-5
    assert np.abs(exported.image(1, psi=0.0, label=3) - centre_7).max() > 1e-3


def test_class_metadata_from_a_hostile_file_is_refused(tmp_path):
    network = tiny("dcgan")
    for bad in (json.dumps(NAMES[:3]), json.dumps(["x\n"] * CLASSES), "not json"):
        metadata = {"latent_dim": str(LATENT), "num_classes": str(CLASSES), "class_names": bad}
        path = tmp_path / f"g{len(bad)}.onnx"
        export_onnx(network, LATENT, path, metadata=metadata, parity_batch=2)
        with pytest.raises(Exception, match="class_names") as caught:
            ExportedGenerator.load(Path(path))
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("family", ["dcgan", "vae", "stylegan"])
def test_an_out_of_range_label_gives_non_finite_images_from_both_exports(family, tmp_path):
    """ONNX's OneHot wraps -1 to the last class and gives a "no class" row for labels >= C: a
    plausible wrong image. The exported graphs must instead give NaN / inf for such a label (a
    caller outside genlab sees the bad input) and the right image for the others."""
    network = tiny(family, num_classes=3)
    export_onnx(network, LATENT, tmp_path / "g.onnx", parity_batch=4)
    export_torchscript(network, LATENT, tmp_path / "g.pt", parity_batch=4)
    session = onnxruntime.InferenceSession(str(tmp_path / "g.onnx"))
    script = torch.jit.load(str(tmp_path / "g.pt"))
    z = np.repeat(latent(5, LATENT), 5, axis=0)
    labels = np.array([-1, 3, 99, 2, 0], dtype=np.int64)
    want = eager(network, z[3:], [2, 0])
    with torch.no_grad():
        script_out = script(torch.from_numpy(z), torch.from_numpy(labels)).numpy()
    for out in (session.run(None, {"z": z, "label": labels})[0], script_out):
        for row in out[:3]:
            assert not np.isfinite(row).all()
        assert np.isfinite(out[3:]).all() and np.abs(out[3:] - want).max() < 1e-4


@pytest.mark.parametrize("family", ["dcgan", "vae", "stylegan"])
def test_an_out_of_range_label_is_refused_eagerly_naming_the_range(family):
    network = tiny(family, num_classes=3)
    z = torch.randn(2, LATENT)
    for bad in ([0, 3], [-1, 0]):
        with pytest.raises(ValueError, match=r"0\.\.2"):
            network(z, torch.tensor(bad))


def test_metadata_longer_than_generate_reads_is_refused_at_export(tmp_path):
    """1000 class names of 64 non-ASCII letters (6 characters each in JSON) are valid names, but
    as metadata more than `genlab generate` reads: the exporters refuse to write such a file,
    while 1000 long ASCII names still export and load."""
    network = tiny("dcgan")

    def metadata(names: list[str]) -> dict[str, str]:
        return {
            "latent_dim": str(LATENT),
            "num_classes": str(len(names)),
            "class_names": json.dumps(names, ensure_ascii=True),
        }

    too_long = metadata([f"{i:03d}" + "é" * 61 for i in range(1000)])
    for export, name in ((export_onnx, "g.onnx"), (export_torchscript, "g.pt")):
        with pytest.raises(ExportError, match="class_names.*shorten the dataset's class names"):
            export(network, LATENT, tmp_path / name, metadata=too_long, parity_batch=2)
        assert not (tmp_path / name).exists()

    names = [f"{i:03d}" + "x" * 61 for i in range(1000)]
    export_onnx(network, LATENT, tmp_path / "ok.onnx", metadata=metadata(names), parity_batch=2)
    export_torchscript(
        network, LATENT, tmp_path / "ok.pt", metadata=metadata(names), parity_batch=2
    )
    assert ExportedGenerator.load(tmp_path / "ok.onnx").class_names == names
    loaded = ExportedGenerator.load(tmp_path / "ok.pt", trust_torchscript=True)
    assert loaded.class_names == names


def test_graph_metadata_round_trips_through_what_generate_reads(tmp_path):
    """The export writes its class facts with graph_metadata; generate reads them back with
    metadata_classes: one set of key names, so the two cannot drift apart."""
    from genlab.export.graph_metadata import balanced_grid_size, class_facts, graph_metadata
    from genlab.generate import metadata_classes

    provenance = {"run_id": "abc", "model": "dcgan"}
    conditional = class_facts(tiny("dcgan"), {"class_names": NAMES})
    assert conditional == {"conditioning": "class", "num_classes": CLASSES, "class_names": NAMES}
    written = graph_metadata(provenance, LATENT, conditional)
    assert metadata_classes(written, tmp_path / "g.onnx") == NAMES
    assert written["latent_dim"] == str(LATENT) and written["run_id"] == "abc"

    unconditional = class_facts(tiny("dcgan", num_classes=0), {})
    assert unconditional == {"conditioning": "none", "num_classes": 0, "class_names": []}
    plain = graph_metadata(provenance, LATENT, unconditional)
    assert plain == {**provenance, "latent_dim": str(LATENT)}, "no class keys when unconditional"
    assert metadata_classes(plain, tmp_path / "g.onnx") == []

    assert balanced_grid_size(64, 0) == 64
    assert balanced_grid_size(64, 10) == 70 and balanced_grid_size(5, 10) == 10
