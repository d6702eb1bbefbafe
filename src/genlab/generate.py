"""Images from an exported generator, with nothing but onnxruntime or torch.jit.

No Lightning, Hydra or training code is imported: an exported folder is enough to generate,
interpolate and (for StyleGAN-lite, whose mapping and synthesis halves are exported beside the
generator) pick the truncation psi or mix the styles of two seeds.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.checks import MAX_LATENT_DIM, printable
from genlab.data.images import MAX_VERIFY_PIXELS
from genlab.errors import GenerateError
from genlab.layout import EXPORT_METADATA_ENTRY, EXPORT_ONNX, EXPORT_TORCHSCRIPT, stage_instance
from genlab.provenance import RUN_KEYS

Run = Callable[[np.ndarray], np.ndarray]

# -- what `genlab generate` accepts: far above any genlab model, far below what would allocate
# or loop for hours. A file or request beyond these is refused with a message, not attempted.
# latent_dim and w_dim: genlab.checks.MAX_LATENT_DIM, the limit training writes files under
MAX_NUM_WS = 64  # StyleGAN-lite style vectors (one per synthesis layer input)
MAX_IMAGE_SIDE = 4096  # pixels per side of one generated image
MAX_SEEDS = 10_000  # seeds per call; more is several calls
MAX_SEED = 2**32 - 1  # the usual seed range (NumPy's); torch takes it as is
MIN_STEPS, MAX_STEPS = 2, 256  # images along --interpolate
MAX_METADATA_CHARS = 64 * MAX_LATENT_DIM  # w_avg as JSON: ~20 characters per float
#: pixels of one --grid, interpolation or mixing PNG: what `genlab verify` reads back
MAX_GRID_PIXELS = MAX_VERIFY_PIXELS
GRID_PADDING = 2  # pixels between tiles, as torchvision's make_grid (save_grid) lays them out
#: the operator domains torch.onnx.export writes; any other needs a custom-op library (code)
ONNX_DOMAINS = frozenset({"", "ai.onnx"})
TRUST_FLAG = "--trust-torchscript"
EXPORT_STAGE = stage_instance("export", "<model>", None)  # export@<model>-<seed>, for messages


def _subgraphs(node: Any) -> Iterator[Any]:
    for attribute in node.attribute:
        if attribute.HasField("g"):
            yield attribute.g
        yield from attribute.graphs


def _onnx_tensors(graph: Any) -> Iterator[Any]:
    """Every tensor stored in ``graph``, its nodes' attributes and their subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Iterable[Any]) -> Iterator[Any]:
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("sparse_tensor"):
                yield attribute.sparse_tensor.values
                yield attribute.sparse_tensor.indices
            for sparse in attribute.sparse_tensors:
                yield sparse.values
                yield sparse.indices
        for subgraph in _subgraphs(node):
            yield from _onnx_tensors(subgraph)


def _onnx_nodes(nodes: Iterable[Any]) -> Iterator[Any]:
    """``nodes`` and every node of their subgraphs, at any depth."""
    for node in nodes:
        yield node
        for subgraph in _subgraphs(node):
            yield from _onnx_nodes(subgraph.node)


def _model_parts(model: Any) -> Iterator[tuple[Iterator[Any], Iterator[Any]]]:
    """(tensors, nodes) of the main graph, then of each local function (model.functions): a
    function's nodes are run like the graph's, so they are checked like the graph's."""
    yield _onnx_tensors(model.graph), _onnx_nodes(model.graph.node)
    for function in model.functions:
        yield _node_tensors(function.node), _onnx_nodes(function.node)


def _check_onnx(model: Any, path: Path) -> None:
    """Refuse what a genlab export never holds and onnxruntime would act on: external data
    (a file read from beside or outside the model) and operators outside standard ONNX (they
    need a custom-op library, which is code)."""
    from onnx import TensorProto

    domains: set[str] = set()
    for tensors, nodes in _model_parts(model):
        for tensor in tensors:
            if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
                entries = {entry.key: entry.value for entry in tensor.external_data}
                raise GenerateError(
                    f"{path} references external data ({_quoted(entries.get('location', '?'))} "
                    f"for tensor {_quoted(tensor.name)}): genlab exports hold all their "
                    f"weights inside the file, so this one was not made by genlab; it is not loaded"
                )
        domains.update(node.domain for node in nodes)
    foreign = sorted(domains - ONNX_DOMAINS)
    if foreign:
        raise GenerateError(
            f"{path} uses operator domain {_quoted(foreign[0])}, which needs code from outside "
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
    metadata = torchscript_metadata(extra_files[EXPORT_METADATA_ENTRY], path)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x.astype(np.float32))).numpy()

    return run, metadata


def torchscript_metadata(text: str | bytes, path: Path) -> dict[str, str]:
    """The ``genlab.json`` entry of a TorchScript export as metadata (``{}`` when empty): a JSON
    object of at most MAX_METADATA_CHARS, its values as strings, like an ONNX file's
    metadata_props. The only parser of that entry, so every reader applies the same checks."""
    where = f"{path}: {EXPORT_METADATA_ENTRY} inside it"
    if len(text) > MAX_METADATA_CHARS:
        raise GenerateError(
            f"{where} is {len(text):,} characters, more than any genlab export writes "
            f"({MAX_METADATA_CHARS:,}); it is not read"
        )
    try:
        found = json.loads(text or "{}")
    except ValueError as error:
        raise GenerateError(f"{where} is not JSON ({printable(str(error), 80)})") from None
    if not isinstance(found, dict):
        raise GenerateError(f"{where} is not a JSON object (a {type(found).__name__})")
    return {str(key): str(value) for key, value in found.items()}


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
            f"{path} does not exist: export the model first (`dvc repro {EXPORT_STAGE}`); "
            f"the files are exports/<run>/{EXPORT_ONNX} and {EXPORT_TORCHSCRIPT}"
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
        raise GenerateError(
            f"{path} could not be loaded ({kind}: {printable(str(error), 200)})"
        ) from error


def _quoted(text: str) -> str:
    """A value from a file, quoted for a one-line message: escaped and cut short (printable)."""
    return f"'{printable(text, 80)}'"


def _bad_value(path: Path, key: str, value: str, wanted: str) -> GenerateError:
    return GenerateError(
        f"{path}: metadata {key}={_quoted(value)} is not {wanted}; re-export the model with "
        f"genlab (`dvc repro {EXPORT_STAGE}`) or ask whoever shared it for a genlab export"
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


# -- the argument checks, once: the CLI's argparse types call these (GenerateError -> usage error)


def check_seed(seed: int, what: str = "seed") -> int:
    """``seed`` if it is in NumPy's usual seed range 0..MAX_SEED."""
    if not 0 <= seed <= MAX_SEED:
        raise GenerateError(f"{what} must be an integer in 0..{MAX_SEED}, got {seed}")
    return seed


def check_seeds(seeds: Sequence[int]) -> Sequence[int]:
    """At most MAX_SEEDS seeds, each in range."""
    if len(seeds) > MAX_SEEDS:
        raise GenerateError(
            f"at most {MAX_SEEDS} seeds per call, got {len(seeds)}: split them over several calls"
        )
    for seed in seeds:
        check_seed(seed)
    return seeds


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]; at most MAX_SEEDS, counted before any list is built (a
    range like 0-1000000000 is refused at once, not after building a billion-item list)."""
    ranges: list[tuple[int, int]] = []
    try:
        for part in filter(None, text.split(",")):
            start, end = part.split("-", 1) if "-" in part[1:] else (part, part)
            ranges.append((int(start), int(end)))
    except ValueError:
        raise GenerateError(
            f"seeds must look like '0-7' or '1,5,9' (non-negative integers), got {text!r}"
        ) from None
    if not ranges or any(not 0 <= start <= end <= MAX_SEED for start, end in ranges):
        raise GenerateError(
            f"seeds must be integers in 0..{MAX_SEED}, ranges low-high, got {text!r}"
        )
    count = sum(end - start + 1 for start, end in ranges)
    if count > MAX_SEEDS:
        raise GenerateError(
            f"{count} seeds asked for, at most {MAX_SEEDS} per call: split the range over "
            f"several calls (e.g. --seeds 0-{MAX_SEEDS - 1}, then --seeds "
            f"{MAX_SEEDS}-{2 * MAX_SEEDS - 1})"
        )
    return [seed for start, end in ranges for seed in range(start, end + 1)]


def check_steps(steps: int) -> int:
    """Images along an interpolation: MIN_STEPS..MAX_STEPS."""
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise GenerateError(f"--steps must be an integer in {MIN_STEPS}..{MAX_STEPS}, got {steps}")
    return steps


def check_psi(psi: float) -> float:
    """A finite truncation psi: NaN or inf would write NaN images."""
    if not math.isfinite(psi):
        raise GenerateError(f"--psi must be a finite number, got {psi}")
    return psi


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
        found = {k: printable(self.metadata[k], 200) for k in RUN_KEYS if k in self.metadata}
        return {
            **found,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "generator_file": self.source.name,
            "tool": "genlab generate",
            **extra,
        }

    def require_styles(self, what: str) -> None:
        """A GenerateError unless the export has StyleGAN-lite's mapping and synthesis files."""
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
        w = w_avg + check_psi(psi) * (w - w_avg)
        return np.repeat(w[:, None, :], self.style["num_ws"], axis=1)

    def image(self, seed: int, psi: float | None = None) -> np.ndarray:
        """(C, H, W) in [-1, 1] for one seed: the same image whatever else is generated.
        ``psi`` needs style controls."""
        check_seed(seed)
        if psi is None:
            return self._images(self.run, latent(seed, self.latent_dim), "generator")[0]
        self.require_styles("--psi")
        return self._images(self.synthesis, self._ws(seed, psi), "synthesis")[0]

    def images(self, seeds: Sequence[int], psi: float | None = None) -> Iterator[np.ndarray]:
        """:meth:`image` of each seed, one at a time: up to MAX_SEEDS images of up to
        MAX_IMAGE_SIDE pixels a side are never all held at once."""
        check_seeds(seeds)
        if psi is not None:
            self.require_styles("--psi")
        return (self.image(seed, psi) for seed in seeds)

    def interpolate(self, seed_a: int, seed_b: int, steps: int) -> Iterator[np.ndarray]:
        """``steps`` images along the slerp path from seed_a's latent to seed_b's, one at a time."""
        check_seeds([seed_a, seed_b])
        check_steps(steps)
        a, b = latent(seed_a, self.latent_dim), latent(seed_b, self.latent_dim)
        for t in np.linspace(0.0, 1.0, steps):
            z = slerp(a, b, t).astype(np.float32)
            yield self._images(self.run, z, "generator")[0]

    def mix(self, seed_a: int, seed_b: int, psi: float | None = None) -> Iterator[np.ndarray]:
        """One image per crossover 0..num_ws: the first k styles from seed_a, the rest from b."""
        self.require_styles("--mix")
        check_seeds([seed_a, seed_b])
        psi = self.style["truncation_psi"] if psi is None else psi
        ws_a, ws_b = self._ws(seed_a, psi), self._ws(seed_b, psi)
        for crossover in range(self.style["num_ws"] + 1):
            ws = np.concatenate([ws_a[:, :crossover], ws_b[:, crossover:]], axis=1)
            yield self._images(self.synthesis, ws, "synthesis")[0]

    @property
    def mix_count(self) -> int:
        """Images :meth:`mix` yields (one per crossover, 0..num_ws)."""
        self.require_styles("--mix")
        return self.style["num_ws"] + 1


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> uint8, rounded as save_png rounds: a quarter of the memory."""
    scaled = (np.clip(image.astype(np.float32), -1.0, 1.0) + 1.0) * 127.5
    return np.round(scaled).astype(np.uint8)


class Grid:
    """Images tiled into one uint8 (C, H, W) array, filled as each image is generated.

    The layout is torchvision's make_grid (as :func:`genlab.provenance.save_grid` uses it):
    ``nrow`` tiles a row (default ~sqrt(count)), GRID_PADDING black pixels around each tile.
    The size is checked from the first image, before anything is generated or written past it:
    a grid over MAX_GRID_PIXELS is refused (it would be more than `genlab verify` reads back,
    and 10,000 tiles of 4096x4096 would be hundreds of GiB).
    """

    def __init__(
        self, count: int, shape: tuple[int, ...], what: str, nrow: int | None = None
    ) -> None:
        channels, height, width = shape
        self.count, self.tile = count, (channels, height, width)
        self.per_row = min(nrow or math.ceil(math.sqrt(count)), count)
        rows = math.ceil(count / self.per_row)
        self.step = (height + GRID_PADDING, width + GRID_PADDING)
        grid_h, grid_w = (
            rows * self.step[0] + GRID_PADDING,
            self.per_row * self.step[1] + GRID_PADDING,
        )
        if grid_h * grid_w > MAX_GRID_PIXELS:
            raise GenerateError(
                f"{what} would tile {count} images of {width}x{height} into a {grid_w}x{grid_h} "
                f"PNG, more than {MAX_GRID_PIXELS:,} pixels (what genlab verify reads back); "
                f"nothing was written: ask for fewer seeds or steps, or leave {what} out"
            )
        self.array = np.zeros((channels, grid_h, grid_w), dtype=np.uint8)
        self.filled = 0

    def add(self, image: np.ndarray) -> None:
        """Place the next image (C, H, W), float in [-1, 1] or uint8."""
        if tuple(image.shape) != self.tile:
            raise GenerateError(
                f"the generator output images of shape {tuple(image.shape)} after "
                f"{self.tile}; a genlab generator outputs one size: re-export the model"
            )
        row, column = divmod(self.filled, self.per_row)
        top, left = row * self.step[0] + GRID_PADDING, column * self.step[1] + GRID_PADDING
        pixels = image if image.dtype == np.uint8 else to_uint8(image)
        self.array[:, top : top + self.tile[1], left : left + self.tile[2]] = pixels
        self.filled += 1


def tiled(
    images: Iterable[np.ndarray], count: int, what: str, nrow: int | None = None
) -> np.ndarray:
    """``count`` images from ``images`` as one :class:`Grid` (checked on the first image)."""
    grid: Grid | None = None
    for image in images:
        grid = grid or Grid(count, image.shape, what, nrow)
        grid.add(image)
    assert grid is not None and grid.filled == count
    return grid.array


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
            f"{path} failed on an input of shape {x.shape} ({kind}: {printable(str(error), 200)})"
        ) from error
