"""Images from an exported generator, with nothing but onnxruntime or torch.jit.

No Lightning, Hydra or training code is imported: an exported folder is enough to generate,
interpolate and (for StyleGAN-lite, whose mapping and synthesis halves are exported beside the
generator) pick the truncation psi or mix the styles of two seeds.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.errors import GenerateError
from genlab.layout import EXPORT_METADATA_ENTRY, EXPORT_ONNX
from genlab.provenance import RUN_KEYS

Run = Callable[[np.ndarray], np.ndarray]

# -- what `genlab generate` accepts: far above any genlab model, far below what would allocate
# or loop for hours. A file or request beyond these is refused with a message, not attempted.
MAX_LATENT_DIM = 4096  # latent_dim and w_dim
MAX_NUM_WS = 64  # StyleGAN-lite style vectors (one per synthesis layer input)
MAX_IMAGE_SIDE = 4096  # pixels per side of one generated image
MAX_SEEDS = 10_000  # seeds per call; more is several calls
MAX_SEED = 2**32 - 1  # the usual seed range (NumPy's); torch takes it as is
MIN_STEPS, MAX_STEPS = 2, 256  # images along --interpolate
MAX_METADATA_CHARS = 64 * MAX_LATENT_DIM  # w_avg as JSON: ~20 characters per float
#: the operator domains torch.onnx.export writes; any other needs a custom-op library (code)
ONNX_DOMAINS = frozenset({"", "ai.onnx"})
TRUST_FLAG = "--trust-torchscript"


def _onnx_tensors(graph: Any) -> Iterator[Any]:
    """Every tensor stored in ``graph``, its nodes' attributes and their subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for subgraph in ([attribute.g] if attribute.HasField("g") else []) + list(
                attribute.graphs
            ):
                yield from _onnx_tensors(subgraph)


def _onnx_nodes(graph: Any) -> Iterator[Any]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for subgraph in ([attribute.g] if attribute.HasField("g") else []) + list(
                attribute.graphs
            ):
                yield from _onnx_nodes(subgraph)


def _check_onnx(model: Any, path: Path) -> None:
    """Refuse what a genlab export never holds and onnxruntime would act on: external data
    (a file read from beside or outside the model) and operators outside standard ONNX (they
    need a custom-op library, which is code)."""
    from onnx import TensorProto

    for tensor in _onnx_tensors(model.graph):
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
            where = {entry.key: entry.value for entry in tensor.external_data}.get("location", "?")
            raise GenerateError(
                f"{path} references external data ({_short(where)!r} for tensor "
                f"{_short(tensor.name)!r}): genlab exports hold all their weights inside the "
                f"file, so this one was not made by genlab; it is not loaded"
            )
    nodes = [*_onnx_nodes(model.graph)]
    for function in model.functions:
        nodes.extend(function.node)
    foreign = sorted({node.domain for node in nodes} - ONNX_DOMAINS)
    if foreign:
        raise GenerateError(
            f"{path} uses operator domain {_short(foreign[0])!r}, which needs code from outside "
            f"the file (a custom-op library); genlab exports use standard ONNX operators only"
        )


def _load_onnx(path: Path) -> tuple[Run, dict[str, str]]:
    import onnx
    import onnxruntime

    data = path.read_bytes()  # one read: what is checked is what onnxruntime runs
    model = onnx.load_model_from_string(data)
    _check_onnx(model, path)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([output_name], {input_name: x.astype(np.float32)})[0]

    return run, metadata


def _load_torchscript(path: Path) -> tuple[Run, dict[str, str]]:
    extra_files = {EXPORT_METADATA_ENTRY: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files)
    found = json.loads(extra_files[EXPORT_METADATA_ENTRY] or "{}")
    if not isinstance(found, dict):
        raise GenerateError(f"{path}: {EXPORT_METADATA_ENTRY} inside it is not a JSON object")
    metadata = {str(key): str(value) for key, value in found.items()}

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x.astype(np.float32))).numpy()

    return run, metadata


LOADERS = {".onnx": _load_onnx, ".pt": _load_torchscript}


def load_graph(
    path: str | os.PathLike, *, trust_torchscript: bool = False
) -> tuple[Run, dict[str, str]]:
    """The file's forward function and its metadata.

    ONNX is data: it is checked (no external data, standard operators only) and run by
    onnxruntime. TorchScript is a program that runs with the user's permissions as soon as it
    is loaded and called, so it is only loaded when ``trust_torchscript`` says so.
    """
    path = Path(path)
    if not path.is_file():
        raise GenerateError(
            f"{path} does not exist: export the model first (`dvc repro export@<model>`); "
            f"the files are exports/<model>/generator.onnx and generator.torchscript.pt"
        )
    loader = LOADERS.get(path.suffix)
    if loader is None:
        raise GenerateError(f"{path}: expected an .onnx or a TorchScript .pt file")
    if loader is _load_torchscript and not trust_torchscript:
        raise GenerateError(
            f"{path} is TorchScript, a program that would run with your permissions: use the "
            f"{EXPORT_ONNX} beside it (the format for sharing models), or pass {TRUST_FLAG} "
            f"if you made this file or trust whoever did"
        )
    try:
        return loader(path)
    except GenerateError:
        raise
    except Exception as error:
        kind = type(error).__name__
        raise GenerateError(f"{path} could not be loaded ({kind}: {_short(str(error))})") from error


def _short(text: str, limit: int = 80) -> str:
    """A value from a file on one line, cut short: a hostile file must not flood the terminal."""
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _bad_value(path: Path, key: str, value: str, wanted: str) -> GenerateError:
    return GenerateError(
        f"{path}: metadata {key}={_short(value)!r} is not {wanted}; re-export the model with "
        f"genlab (`dvc repro export@<model>`) or ask whoever shared it for a genlab export"
    )


def metadata_int(metadata: dict[str, str], key: str, path: Path, low: int, high: int) -> int:
    """``metadata[key]`` as an integer in ``low..high``, or a GenerateError naming key and file."""
    value = metadata.get(key)
    if value is None:
        raise GenerateError(f"{path} carries no genlab metadata ({key}): re-export it")
    text = value.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 12 and low <= int(text) <= high):
        raise _bad_value(path, key, value, f"an integer in {low}..{high}")
    return int(text)


def metadata_float(metadata: dict[str, str], key: str, path: Path) -> float:
    value = metadata.get(key, "")
    try:
        number = float(value) if len(value) <= 64 else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _bad_value(path, key, value, "a finite number")
    return number


def metadata_vector(metadata: dict[str, str], key: str, path: Path, size: int) -> np.ndarray:
    """A JSON list of ``size`` finite floats."""
    value = metadata.get(key, "")
    wanted = f"a JSON list of {size} finite numbers"
    if len(value) > MAX_METADATA_CHARS:
        raise _bad_value(path, key, value, wanted)
    try:
        vector = np.asarray(json.loads(value), dtype=np.float32)
    except (ValueError, TypeError):
        raise _bad_value(path, key, value, wanted) from None
    if vector.shape != (size,) or not np.isfinite(vector).all():
        raise _bad_value(path, key, value, wanted)
    return vector


def check_seed(seed: int, what: str = "seed") -> int:
    if not 0 <= seed <= MAX_SEED:
        raise GenerateError(f"{what} must be an integer in 0..{MAX_SEED}, got {seed}")
    return seed


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
    def load(cls, path: str | os.PathLike, *, trust_torchscript: bool = False) -> ExportedGenerator:
        """The generator file and, beside it, StyleGAN-lite's halves; every size the files
        declare is range-checked here, before it sizes a tensor or a loop."""
        path = Path(path)
        run, metadata = load_graph(path, trust_torchscript=trust_torchscript)
        metadata_int(metadata, "latent_dim", path, 1, MAX_LATENT_DIM)
        generator = cls(run, metadata, path)
        mapping_file, synthesis_file = generator._file("mapping"), generator._file("synthesis")
        if mapping_file.is_file() and synthesis_file.is_file():
            generator.mapping, style_meta = load_graph(
                mapping_file, trust_torchscript=trust_torchscript
            )
            generator.synthesis, _ = load_graph(synthesis_file, trust_torchscript=trust_torchscript)
            generator.style = _style(style_meta, mapping_file)
        return generator

    @property
    def latent_dim(self) -> int:
        return int(self.metadata["latent_dim"])

    @property
    def has_style_controls(self) -> bool:
        return self.mapping is not None

    def provenance(self, **extra: str) -> dict[str, str]:
        found = {k: _short(self.metadata[k], 200) for k in RUN_KEYS if k in self.metadata}
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

    def _file(self, part: str) -> Path:
        """generator -> the loaded file; mapping / synthesis -> the file of that name beside it."""
        if part == "generator":
            return self.source
        suffix = ".onnx" if self.source.suffix == ".onnx" else ".torchscript.pt"
        return self.source.parent / f"{part}{suffix}"

    def _images(self, run: Run, x: np.ndarray, part: str) -> np.ndarray:
        """Run one graph and check what came out is a batch of images genlab can save."""
        images = _run(run, x, self._file(part))
        shape = images.shape
        if (
            images.ndim != 4
            or shape[0] != x.shape[0]
            or shape[1] not in (1, 3)
            or not 1 <= min(shape[2:]) <= max(shape[2:]) <= MAX_IMAGE_SIDE
        ):
            raise GenerateError(
                f"{self._file(part)} output shape {shape} is not a batch of "
                f"{x.shape[0]} images of 1 or 3 channels and at most {MAX_IMAGE_SIDE}x"
                f"{MAX_IMAGE_SIDE} pixels; it is not a genlab generator"
            )
        if not np.isfinite(images).all():
            raise GenerateError(
                f"{self._file(part)} output NaN or infinite pixels; nothing was written"
            )
        return images

    def _ws(self, seed: int, psi: float) -> np.ndarray:
        w_avg = self.style["w_avg"]
        w = _run(self.mapping, latent(seed, self.latent_dim), self._file("mapping"))
        if w.shape != (1, len(w_avg)):
            raise GenerateError(
                f"{self._file('mapping')}: the mapping outputs w of shape {w.shape}, "
                f"but its metadata says w_avg has {len(w_avg)} values; re-export the model"
            )
        w = w_avg + _finite_psi(psi) * (w - w_avg)
        return np.repeat(w[:, None, :], self.style["num_ws"], axis=1)

    def images(self, seeds: Sequence[int], psi: float | None = None) -> np.ndarray:
        """(N, C, H, W) in [-1, 1], one per seed. ``psi`` needs style controls."""
        seeds = _check_seeds(seeds)
        if psi is None:
            images = [
                self._images(self.run, latent(s, self.latent_dim), "generator") for s in seeds
            ]
            return np.concatenate(images)
        self._require_styles("--psi")
        return np.concatenate(
            [self._images(self.synthesis, self._ws(s, psi), "synthesis") for s in seeds]
        )

    def interpolate(self, seed_a: int, seed_b: int, steps: int) -> np.ndarray:
        _check_seeds([seed_a, seed_b])
        if not MIN_STEPS <= steps <= MAX_STEPS:
            raise GenerateError(f"--steps must be in {MIN_STEPS}..{MAX_STEPS}, got {steps}")
        a, b = latent(seed_a, self.latent_dim), latent(seed_b, self.latent_dim)
        path = [slerp(a, b, t) for t in np.linspace(0.0, 1.0, steps)]
        return np.concatenate(
            [self._images(self.run, z.astype(np.float32), "generator") for z in path]
        )

    def mix(self, seed_a: int, seed_b: int, psi: float | None = None) -> np.ndarray:
        """One image per crossover 0..num_ws: the first k styles from seed_a, the rest from b."""
        self._require_styles("--mix")
        _check_seeds([seed_a, seed_b])
        psi = self.style["truncation_psi"] if psi is None else psi
        ws_a, ws_b = self._ws(seed_a, psi), self._ws(seed_b, psi)
        num_ws = self.style["num_ws"]
        rows = []
        for crossover in range(num_ws + 1):
            ws = np.concatenate([ws_a[:, :crossover], ws_b[:, crossover:]], axis=1)
            rows.append(self._images(self.synthesis, ws, "synthesis"))
        return np.concatenate(rows)


def _style(metadata: dict[str, str], path: Path) -> dict[str, Any]:
    """num_ws, w_avg and the default psi from the mapping file, each range-checked."""
    num_ws = metadata_int(metadata, "num_ws", path, 1, MAX_NUM_WS)
    w_dim = metadata_int(metadata, "w_dim", path, 1, MAX_LATENT_DIM)
    return {
        "num_ws": num_ws,
        "w_avg": metadata_vector(metadata, "w_avg", path, w_dim),
        "truncation_psi": metadata_float(metadata, "truncation_psi", path),
    }


def _run(run: Run, x: np.ndarray, path: Path) -> np.ndarray:
    """One forward pass; a graph that fails on the inputs its metadata asks for is a bad file."""
    try:
        return np.asarray(run(x))
    except Exception as error:  # onnxruntime and torch.jit raise many types
        kind = type(error).__name__
        raise GenerateError(
            f"{path} failed on an input of shape {x.shape} ({kind}: {_short(str(error), 200)})"
        ) from error


def _finite_psi(psi: float) -> float:
    if not math.isfinite(psi):
        raise GenerateError(f"--psi must be a finite number, got {psi}")
    return psi


def _check_seeds(seeds: Sequence[int]) -> Sequence[int]:
    if len(seeds) > MAX_SEEDS:
        raise GenerateError(
            f"at most {MAX_SEEDS} seeds per call, got {len(seeds)}: split them over several calls"
        )
    for seed in seeds:
        check_seed(seed)
    return seeds
