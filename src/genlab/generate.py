"""Images from an exported generator, with nothing but onnxruntime or torch.jit.

No Lightning, Hydra or training code is imported: an exported folder is enough to generate,
interpolate and (for StyleGAN-lite, whose mapping and synthesis halves are exported beside the
generator) pick the truncation psi or mix the styles of two seeds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.errors import GenerateError
from genlab.layout import EXPORT_METADATA_ENTRY
from genlab.provenance import RUN_KEYS

Run = Callable[[np.ndarray], np.ndarray]


def _load_onnx(path: Path) -> tuple[Run, dict[str, str]]:
    import onnx
    import onnxruntime

    graph = onnx.load(str(path), load_external_data=False)
    metadata = {prop.key: prop.value for prop in graph.metadata_props}
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([output_name], {input_name: x.astype(np.float32)})[0]

    return run, metadata


def _load_torchscript(path: Path) -> tuple[Run, dict[str, str]]:
    extra_files = {EXPORT_METADATA_ENTRY: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files)
    metadata = json.loads(extra_files[EXPORT_METADATA_ENTRY] or "{}")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x.astype(np.float32))).numpy()

    return run, metadata


LOADERS = {".onnx": _load_onnx, ".pt": _load_torchscript}


def load_graph(path: str | os.PathLike) -> tuple[Run, dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise GenerateError(
            f"{path} does not exist: export the model first (`dvc repro export@<model>`); "
            f"the files are exports/<model>/generator.onnx and generator.torchscript.pt"
        )
    loader = LOADERS.get(path.suffix)
    if loader is None:
        raise GenerateError(f"{path}: expected an .onnx or a TorchScript .pt file")
    try:
        return loader(path)
    except Exception as error:
        kind = type(error).__name__
        raise GenerateError(f"{path} could not be loaded ({kind}: {error})") from error


def latent(seed: int, latent_dim: int) -> np.ndarray:
    """The latent of one seed: the same image for the same seed, whatever else is generated."""
    return torch.randn(1, latent_dim, generator=torch.Generator().manual_seed(seed)).numpy()


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation: Gaussian latents keep their typical norm along the path."""
    a_unit, b_unit = a / np.linalg.norm(a), b / np.linalg.norm(b)
    omega = np.arccos(np.clip(np.sum(a_unit * b_unit), -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


@dataclass
class ExportedGenerator:
    run: Run
    metadata: dict[str, str]
    source: Path
    mapping: Run | None = None
    synthesis: Run | None = None
    style: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ExportedGenerator:
        path = Path(path)
        run, metadata = load_graph(path)
        if "latent_dim" not in metadata:
            raise GenerateError(f"{path} carries no genlab metadata (latent_dim): re-export it")
        generator = cls(run, metadata, path)
        suffix = ".onnx" if path.suffix == ".onnx" else ".torchscript.pt"
        mapping_file = path.parent / f"mapping{suffix}"
        synthesis_file = path.parent / f"synthesis{suffix}"
        if mapping_file.is_file() and synthesis_file.is_file():
            generator.mapping, style_meta = load_graph(mapping_file)
            generator.synthesis, _ = load_graph(synthesis_file)
            generator.style = {
                "num_ws": int(style_meta["num_ws"]),
                "w_avg": np.asarray(json.loads(style_meta["w_avg"]), dtype=np.float32),
                "truncation_psi": float(style_meta["truncation_psi"]),
            }
        return generator

    @property
    def latent_dim(self) -> int:
        return int(self.metadata["latent_dim"])

    @property
    def has_style_controls(self) -> bool:
        return self.mapping is not None

    def provenance(self, **extra: str) -> dict[str, str]:
        found = {k: self.metadata[k] for k in RUN_KEYS if k in self.metadata}
        return {
            **found,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "generator_file": self.source.name,
            "tool": "genlab generate",
            **extra,
        }

    def _require_styles(self, what: str) -> None:
        if not self.has_style_controls:
            raise GenerateError(
                f"{what} needs a StyleGAN-lite export (mapping and synthesis files beside "
                f"{self.source.name}); this model has none"
            )

    def _ws(self, seed: int, psi: float) -> np.ndarray:
        w = self.mapping(latent(seed, self.latent_dim))
        w = self.style["w_avg"] + psi * (w - self.style["w_avg"])
        return np.repeat(w[:, None, :], self.style["num_ws"], axis=1)

    def images(self, seeds: Sequence[int], psi: float | None = None) -> np.ndarray:
        """(N, C, H, W) in [-1, 1], one per seed. ``psi`` needs style controls."""
        if psi is None:
            return np.concatenate([self.run(latent(s, self.latent_dim)) for s in seeds])
        self._require_styles("--psi")
        return np.concatenate([self.synthesis(self._ws(s, psi)) for s in seeds])

    def interpolate(self, seed_a: int, seed_b: int, steps: int) -> np.ndarray:
        if steps < 2:
            raise GenerateError(f"--steps must be >= 2, got {steps}")
        a, b = latent(seed_a, self.latent_dim), latent(seed_b, self.latent_dim)
        path = [slerp(a, b, t) for t in np.linspace(0.0, 1.0, steps)]
        return np.concatenate([self.run(z.astype(np.float32)) for z in path])

    def mix(self, seed_a: int, seed_b: int, psi: float | None = None) -> np.ndarray:
        """One image per crossover 0..num_ws: the first k styles from seed_a, the rest from b."""
        self._require_styles("--mix")
        psi = self.style["truncation_psi"] if psi is None else psi
        ws_a, ws_b = self._ws(seed_a, psi), self._ws(seed_b, psi)
        num_ws = self.style["num_ws"]
        rows = []
        for crossover in range(num_ws + 1):
            ws = np.concatenate([ws_a[:, :crossover], ws_b[:, crossover:]], axis=1)
            rows.append(self.synthesis(ws))
        return np.concatenate(rows)
