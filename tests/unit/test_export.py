"""Export package: parity of TorchScript/ONNX files, provenance metadata, model cards."""

from __future__ import annotations

import genlab  # noqa: F401  (first, before anything imports torchvision: CPU shim)

# isort: split
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from genlab.errors import ExportError
from genlab.export.model_card import NOT_RECORDED, render_model_card, write_model_card
from genlab.export.onnx import export_onnx, read_onnx_metadata
from genlab.export.torchscript import export_torchscript
from genlab.layout import stage_instance
from genlab.provenance import (
    DIGITAL_SOURCE_TYPE,
    read_provenance,
    save_grid,
    save_png,
)

LATENT = 16
IPTC_URL = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


class TinyGenerator(nn.Module):
    """Linear -> (B,32,8,8) -> 2x ConvTranspose -> tanh: (B, channels, 32, 32) in [-1, 1]."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.fc = nn.Linear(LATENT, 32 * 8 * 8)
        self.net = nn.Sequential(
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.ConvTranspose2d(16, channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, 32, 8, 8))


class BatchSizeBranch(TinyGenerator):
    """Python control flow on the batch size: the trace freezes the branch taken."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = super().forward(z)
        return out if z.shape[0] > 4 else -out


class NoisyGenerator(TinyGenerator):
    """Samples noise inside forward(): no exported file can reproduce eager output."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z + torch.randn_like(z))


def _make(cls: type[TinyGenerator] = TinyGenerator, channels: int = 1) -> TinyGenerator:
    torch.manual_seed(0)
    gen = cls(channels)
    with torch.no_grad():  # non-trivial running stats, so eval-mode BatchNorm matters
        for module in gen.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return gen.train()  # export must switch to eval itself


@pytest.fixture(autouse=True)
def _quiet_tracer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


# --- TorchScript -------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_torchscript_parity_and_dynamic_batch(tmp_path: Path, channels: int) -> None:
    gen = _make(channels=channels)
    path = tmp_path / "gen.pt"
    result = export_torchscript(gen, LATENT, path, parity_batch=8)

    assert set(result) == {"path", "max_abs_diff", "batch_sizes_checked"}
    assert result["path"] == str(path) and path.is_file()
    assert result["max_abs_diff"] < 1e-4
    assert len(result["batch_sizes_checked"]) >= 2 and 8 in result["batch_sizes_checked"]
    assert gen.training, "the caller's training mode is restored"

    loaded = torch.jit.load(str(path))
    z = torch.randn(5, LATENT)
    with torch.no_grad():
        assert loaded(z).shape == (5, channels, 32, 32)
        torch.testing.assert_close(loaded(z), gen.eval()(z), atol=1e-4, rtol=0)
    assert list(tmp_path.iterdir()) == [path], "no temporary files left behind"


@pytest.mark.parametrize("cls", [BatchSizeBranch, NoisyGenerator])
def test_torchscript_mismatch_raises_and_writes_nothing(tmp_path: Path, cls) -> None:
    path = tmp_path / "bad.pt"
    with pytest.raises(ExportError, match="max_abs_diff"):
        export_torchscript(_make(cls), LATENT, path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_torchscript_failed_export_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "gen.pt"
    export_torchscript(_make(), LATENT, path)
    before = path.read_bytes()
    with pytest.raises(ExportError):
        export_torchscript(_make(NoisyGenerator), LATENT, path)
    assert path.read_bytes() == before


# --- ONNX ----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_onnx_parity_dynamic_batch_and_metadata(tmp_path: Path, channels: int) -> None:
    import onnxruntime

    meta = {"model": "dcgan", "run_id": "abc123", "machine_generated_output": "true"}
    path = tmp_path / "gen.onnx"
    result = export_onnx(_make(channels=channels), LATENT, path, opset=17, metadata=meta)

    assert set(result) == {"path", "max_abs_diff", "opset", "batch_sizes_checked"}
    assert result["opset"] == 17 and result["max_abs_diff"] < 1e-4
    assert len(set(result["batch_sizes_checked"])) >= 2
    assert read_onnx_metadata(path) == meta

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["z"]
    assert [o.name for o in session.get_outputs()] == ["images"]
    assert session.get_modelmeta().custom_metadata_map == meta
    for batch in (1, 7):
        z = np.random.default_rng(batch).standard_normal((batch, LATENT), dtype=np.float32)
        (images,) = session.run(["images"], {"z": z})
        assert images.shape == (batch, channels, 32, 32)
    assert list(tmp_path.iterdir()) == [path]


def test_onnx_mismatch_raises_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="ONNX"):
        export_onnx(_make(BatchSizeBranch), LATENT, path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


# --- provenance ------------------------------------------------------------------------------

PROVENANCE = {
    "model": "dcgan",
    "run_id": "run-42",
    "training_fingerprint": "deadbeef",
    "code_version": "0123abc",
    "created": "2024-05-01T12:00:00+00:00",
}


def test_png_provenance_round_trip(tmp_path: Path) -> None:
    path = save_png(torch.rand(3, 8, 8) * 2 - 1, tmp_path / "x.png", PROVENANCE)

    assert DIGITAL_SOURCE_TYPE == IPTC_URL
    found = read_provenance(path)
    watermark = found.pop("watermark")
    assert found == {"DigitalSourceType": IPTC_URL, "machine_generated": "true", **PROVENANCE}
    assert watermark.startswith("none: image smaller than 256x256")

    with Image.open(path) as img:  # readable by plain PIL, no genlab needed
        text = dict(img.text)
    assert text["DigitalSourceType"] == IPTC_URL
    assert text["genlab:machine_generated"] == "true"
    assert text["genlab:run_id"] == "run-42"
    xmp = text["XML:com.adobe.xmp"]
    assert f"<Iptc4xmpExt:DigitalSourceType>{IPTC_URL}</Iptc4xmpExt:DigitalSourceType>" in xmp
    assert "<genlab:run_id>run-42</genlab:run_id>" in xmp
    assert list(tmp_path.iterdir()) == [path]


def test_read_provenance_of_unlabelled_png_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("L", (4, 4)).save(path)
    assert read_provenance(path) == {}


def test_png_modes_and_value_mapping(tmp_path: Path) -> None:
    gray = torch.tensor([[[-1.0, 0.0], [1.0, 2.0]]])  # (1, 2, 2); 2.0 is clipped
    with Image.open(save_png(gray, tmp_path / "g.png", PROVENANCE)) as img:
        assert img.mode == "L" and img.size == (2, 2)
        assert np.asarray(img).tolist() == [[0, 128], [255, 255]]

    rgb = np.full((3, 4, 6), 200, dtype=np.uint8)  # uint8 is written unchanged
    with Image.open(save_png(rgb, tmp_path / "c.png", PROVENANCE)) as img:
        assert img.mode == "RGB" and img.size == (6, 4)
        assert (np.asarray(img) == 200).all()

    with pytest.raises(ValueError):
        save_png(torch.zeros(2, 4, 4), tmp_path / "bad.png", PROVENANCE)


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB")])
def test_grid_size_mode_and_provenance(tmp_path: Path, channels: int, mode: str) -> None:
    images = torch.rand(10, channels, 32, 32) * 2 - 1
    path = save_grid(images, tmp_path / "grid.png", PROVENANCE, nrow=4)
    with Image.open(path) as img:
        assert img.mode == mode
        assert img.size == (4 * 34 + 2, 3 * 34 + 2)  # 4 columns x 3 rows, padding 2
    assert read_provenance(path)["DigitalSourceType"] == IPTC_URL

    with Image.open(save_grid(images[:9], tmp_path / "sq.png", PROVENANCE)) as img:
        assert img.size == (3 * 34 + 2, 3 * 34 + 2)  # default nrow ~ sqrt(N)


# --- model card ------------------------------------------------------------------------------

SECTIONS = (
    "## Intended use",
    "## Out-of-scope uses",
    "## Limitations",
    "## Risks",
    "## Provenance",
    "## Content credentials",
    "## Memorization",
)
ANCHOR = "SHA256:" + ":".join(["AB"] * 32)
SIGNER = "SHA256:" + ":".join(["0F"] * 32)


def _card_info() -> dict:
    return {
        "model_name": "dcgan-mnist",
        "run_name": "dcgan-mnist-seed0",
        "family": "gan",
        "run_id": "run-42",
        "created": "2024-05-01T12:00:00+00:00",
        "code_version": "0123abc",
        "config": {"model": {"family": "gan", "lr": 0.0002}, "trainer": {"max_epochs": 5}},
        "data": {
            "name": "mnist",
            "counts": {"train": 50000, "val": 10000},
            "image_size": 32,
            "channels": 1,
            "licence": "CC BY-SA 3.0",
            "source": "yann.lecun.com",
        },
        "metrics": {
            "extractor": "domain-classifier-v1",
            "counts": {"samples": 5000, "reference": 360},
            "splits": ["val", "test"],
            "fid": 12.3456,
            "isc_mean": 8.76,
            "kid_mean": 0.0123,
            "kid_std": 0.0011,
            "precision": 0.61,
            "recall": 0.42,
            "density": 0.55,
            "coverage": 0.47,
            "fid_inf": 11.9,
            "intervals": {
                "fid": {"low": 11.5, "high": 13.25, "std": 0.4},
                "kid_mean": {"low": 0.011, "high": 0.0135, "std": 0.0006},
                "precision": {"low": 0.58, "high": 0.64, "std": 0.015},
                "recall": {"low": 0.39, "high": 0.45, "std": 0.015},
                "density": {"low": 0.5, "high": 0.6, "std": 0.025},
                "coverage": {"low": 0.44, "high": 0.5, "std": 0.015},
            },
            "floor": {
                "fid": 1.234,
                "isc_mean": 9.5,
                "kid_mean": 0.0002,
                "kid_std": 0.0001,
                "precision": 0.93,
                "recall": 0.9,
                "density": 1.02,
                "coverage": 0.99,
                "fid_inf": 0.8,
                "intervals": {"fid": {"low": 0.9, "high": 1.6, "std": 0.2}},
            },
            "comparability": {
                "extractor": "classifier",
                "feature_extractor": "genlab-classifier",
                "weights_sha256": "0123456789abcdef" * 4,
                "weights_known": None,
                "input": {"filter": "bilinear", "size": 32},
                "reference": {"split": "test", "size": 360},
                "floor_samples": {"split": "train", "size": 1437},
                "samples": 5000,
                "sample_seed": 1234,
                "kid": {"subset_size": 360, "subsets": 100},
                "nearest_k": 3,
                "bootstrap": {"rounds": 200, "level": 0.95, "seed": 0, "method": "percentile"},
                "sample_counts": {"counts": [250, 500], "draws": 3, "skipped": []},
                "versions": {"torch": "2.5.0", "torch-fidelity": "0.4.0", "torchvision": "0.20"},
            },
            "memorization": {
                "extractor": "classifier",
                "expected_fraction_for_real_data": 0.05,
                "feature": {
                    "threshold": 1.5,
                    "fraction_below_threshold": 0.031,
                    "sample_nn_median": 4.2,
                    "test_nn_median": 3.9,
                },
                "pixel": {
                    "threshold": 3.25,
                    "fraction_below_threshold": 0.0,
                    "sample_nn_median": 7.1,
                    "test_nn_median": 6.0,
                },
                "pairs_image": "metrics/dcgan_nearest_training.png",
            },
        },
        "export": {
            "onnx": {"path": "models/gen.onnx", "max_abs_diff": 3.2e-07, "opset": 17},
            "torchscript": {"path": "models/gen.pt", "max_abs_diff": 0.0},
            "credentials": {
                "format": "C2PA",
                "trust_anchor_fingerprint": ANCHOR,
                "signer_fingerprint": SIGNER,
                "files": {
                    "generator.onnx": {"manifest": "generator.onnx.c2pa", "sha256": "ab" * 32},
                    "generator.torchscript.pt": {
                        "manifest": "generator.torchscript.pt.c2pa",
                        "sha256": "cd" * 32,
                    },
                },
            },
        },
    }


def _card_section(card: str, title: str) -> str:
    return card.split(f"## {title}\n\n", 1)[1].split("\n## ", 1)[0]


def test_model_card_full(tmp_path: Path) -> None:
    card = render_model_card(_card_info())
    for section in SECTIONS:
        assert section in card
    assert card.startswith("# Model card: dcgan-mnist")
    assert "| Metric | Better | Model [95% interval] | Real-vs-real floor [95% interval] |" in card
    assert "| KID (mean) | lower | 0.0123 [0.011, 0.0135] | 0.0002 |" in card
    assert "| FID | lower | 12.346 [11.5, 13.25] | 1.234 [0.9, 1.6] |" in card
    assert "| FID_inf (FID at infinitely many samples) | lower | 11.9 | 0.8 |" in card
    assert "| Precision (fidelity) | higher | 0.61 [0.58, 0.64] | 0.93 |" in card
    assert "| Recall (diversity) | higher | 0.42 [0.39, 0.45] | 0.9 |" in card
    assert "| Density (fidelity) | higher | 0.55 [0.5, 0.6] | 1.02 |" in card
    assert "| Coverage (diversity) | higher | 0.47 [0.44, 0.5] | 0.99 |" in card
    assert "| Inception-style score (mean) | higher | 8.76 | 9.5 |" in card
    assert (
        "- **What decides these numbers:** extractor genlab-classifier (weights sha256 "
        "0123456789ab...); input 32 px, bilinear; reference test split, 360 images; floor train "
        "split, 1437 images; 5000 samples (seed 1234); k = 3 nearest neighbours; bootstrap 200 "
        "rounds at 95%; sample counts 250, 500; torch 2.5.0, torch-fidelity 0.4.0, "
        "torchvision 0.20"
    ) in card
    assert "FID_inf (FID extrapolated to infinitely many" in card
    assert "KID is the headline metric" in card
    assert "not comparable" in card
    assert IPTC_URL in card
    assert "```yaml\nmodel:\n  family: gan\n  lr: 0.0002\ntrainer:\n  max_epochs: 5\n```" in card
    assert "train: 50000, val: 10000" in card
    assert "samples: 5000, reference: 360" in card
    assert "| ONNX | models/gen.onnx | 3.2e-07 |" in card
    assert "run-42" in card and "0123abc" in card and "CC BY-SA 3.0" in card
    assert "| features (classifier) | 1.5 | 3.1% | 4.2 / 3.9 |" in card
    assert "| pixels | 3.25 | 0.0% | 7.1 / 6 |" in card
    assert "5% quantile" in card and "metrics/dcgan_nearest_training.png" in card
    assert NOT_RECORDED not in card
    signed = _card_section(card, "Content credentials")
    assert f"- **Trust anchor (root certificate) SHA-256:** `{ANCHOR}`" in signed
    assert f"- **Signing certificate SHA-256:** `{SIGNER}`" in signed
    assert (
        "- **Signed model files:** generator.onnx (generator.onnx.c2pa), "
        "generator.torchscript.pt (generator.torchscript.pt.c2pa)"
    ) in signed
    assert "C2PA" in signed and "every model file" in signed and "Every image" in signed
    assert (
        "```bash\ngenlab verify exports/dcgan-mnist-seed0/generator.onnx "
        "exports/dcgan-mnist-seed0/samples.png --trust-anchor root.pem\n```"
    ) in signed
    assert "`genlab keys show`" in signed and "compare its fingerprint" in signed
    assert "changed by even one byte no longer verifies" in signed

    path = write_model_card(tmp_path / "card" / "MODEL_CARD.md", _card_info())
    assert path.read_text() == card


def test_model_card_missing_items_render_not_recorded() -> None:
    info = _card_info()
    for key in ("code_version", "config", "export"):
        del info[key]
    del info["data"]["licence"]
    del info["metrics"]["floor"]
    del info["metrics"]["memorization"]
    del info["metrics"]["intervals"]
    card = render_model_card(info)
    stage = stage_instance("evaluate", "<model>", None)
    assert f"Not measured: evaluate this model (`dvc repro {stage}`)" in card
    for section in SECTIONS:
        assert section in card
    assert f"- **Code version:** {NOT_RECORDED}" in card
    assert f"- **Licence:** {NOT_RECORDED}" in card
    assert f"| KID (mean) | lower | 0.0123 | {NOT_RECORDED} |" in card
    assert f"| ONNX | {NOT_RECORDED} | {NOT_RECORDED} |" in card
    assert f"## Training configuration\n\n{NOT_RECORDED}" in card
    assert f"- **Trust anchor (root certificate) SHA-256:** {NOT_RECORDED}" in card
    assert f"- **Signed model files:** {NOT_RECORDED}" in card

    empty = render_model_card({})
    assert empty.startswith(f"# Model card: {NOT_RECORDED}")
    assert all(section in empty for section in SECTIONS)


def test_model_card_of_a_metrics_file_from_before_the_new_scores() -> None:
    """A metrics file written before precision / recall / density / coverage, intervals,
    FID_inf and comparability existed: their cells read "not recorded", nothing crashes."""
    info = _card_info()
    metrics = info["metrics"]
    for key in ("precision", "recall", "density", "coverage", "fid_inf", "intervals"):
        del metrics[key]
        metrics["floor"].pop(key, None)
    del metrics["comparability"]
    card = render_model_card(info)
    assert "| Metric | Better | Model | Real-vs-real floor |" in card
    assert "| FID | lower | 12.346 | 1.234 |" in card
    assert f"| Precision (fidelity) | higher | {NOT_RECORDED} | {NOT_RECORDED} |" in card
    assert f"| FID_inf (FID at infinitely many samples) | lower | {NOT_RECORDED} |" in card
    assert f"- **What decides these numbers:** {NOT_RECORDED}" in card
    assert "scores whose intervals overlap" not in card  # no intervals: no sentence about them


def test_model_card_limitations_follow_the_extractor() -> None:
    classifier = _card_section(render_model_card(_card_info()), "Limitations")
    assert "domain classifier" in classifier and "KID is the headline metric" in classifier
    info = _card_info()
    info["metrics"]["extractor"] = "inception"
    inception = _card_section(render_model_card(info), "Limitations")
    assert "Inception-v3 features" in inception and "domain classifier" not in inception
    assert "not comparable" in inception and "FID_inf" in inception


def test_model_card_comparability_from_a_hostile_record_stays_text() -> None:
    info = _card_info()
    info["metrics"]["comparability"]["input"]["filter"] = "[x](javascript:alert(1)) <b>"
    info["metrics"]["comparability"]["versions"] = {"torch\n## Injected": "<img src=x>"}
    card = render_model_card(info)
    decides = next(line for line in card.splitlines() if "What decides" in line)
    assert "\\[x\\]\\(javascript:alert\\(1\\)\\) &lt;b&gt;" in decides
    assert "&lt;img src=x&gt;" in decides and "<img" not in card
    assert not any(line.startswith("## Injected") for line in card.splitlines())


def test_model_card_credentials_from_a_hostile_record_stay_text() -> None:
    """A run name or fingerprint that is not of the expected form never reaches the card as
    markup: the verify command says <run>, the fingerprint is escaped text, not code."""
    info = _card_info()
    info["run_name"] = "x`\n## Injected"
    info["export"]["credentials"]["trust_anchor_fingerprint"] = "[trust me](http://evil)"
    info["export"]["credentials"]["files"] = {"a](x)": {"manifest": "<img src=x>"}}
    signed = _card_section(render_model_card(info), "Content credentials")
    assert "genlab verify exports/<run>/generator.onnx exports/<run>/samples.png" in signed
    assert "\\[trust me\\]\\(http:\\/\\/evil\\)" in signed and "`[trust" not in signed
    assert "a\\]\\(x\\) (&lt;img src=x&gt;)" in signed
    lines = render_model_card(info).splitlines()
    assert not any(line.startswith("## Injected") for line in lines)
