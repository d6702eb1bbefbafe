"""Images from an exported generator, with nothing but onnxruntime or torch.jit.

No Lightning, Hydra or training code is imported: an exported folder is enough to generate,
interpolate and (for StyleGAN-lite, whose mapping and synthesis halves are exported beside the
generator) pick the truncation psi or mix the styles of two seeds. A class-conditional export
(its metadata names ``num_classes`` and ``class_names``) takes a class index beside each latent:
one class asked for, or every class in turn (balanced, as the pipeline's own samples are).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.checks import MAX_CLASSES, MAX_LATENT_DIM, class_names, printable
from genlab.data.images import MAX_VERIFY_PIXELS
from genlab.errors import GenerateError
from genlab.export.graph_metadata import CLASS_NAMES, LATENT_DIM, NUM_CLASSES
from genlab.export.torchscript import MAX_METADATA_CHARS  # what an export may write
from genlab.layout import EXPORT_METADATA_ENTRY, EXPORT_ONNX, EXPORT_TORCHSCRIPT, stage_instance
from genlab.models.standing_statistics import balanced_labels
from genlab.provenance import CLASS_KEYS, RUN_KEYS

#: one graph's forward: its inputs in order (z or ws, then a conditional graph's labels) ->
#: every output (a conditional mapping half has two: w and its class centre)
Run = Callable[..., list[np.ndarray]]

# -- what `genlab generate` accepts: far above any genlab model, far below what would allocate
# or loop for hours. A file or request beyond these is refused with a message, not attempted.
# latent_dim and w_dim: genlab.checks.MAX_LATENT_DIM, the limit training writes files under
MAX_NUM_WS = 64  # StyleGAN-lite style vectors (one per synthesis layer input)
MAX_IMAGE_SIDE = 4096  # pixels per side of one generated image
MAX_SEEDS = 10_000  # seeds per call; more is several calls
MAX_SEED = 2**32 - 1  # the usual seed range (NumPy's); torch takes it as is
MIN_STEPS, MAX_STEPS = 2, 256  # images along --interpolate
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
    input_names = [node.name for node in session.get_inputs()]

    def run(*inputs: np.ndarray) -> list[np.ndarray]:
        feed = {name: _typed(x) for name, x in zip(input_names, inputs, strict=True)}
        return list(session.run(None, feed))

    return run, metadata


def _typed(x: np.ndarray) -> np.ndarray:
    """Latents and styles as float32, class labels as int64: what every genlab graph takes."""
    return x.astype(np.int64) if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)


def _load_torchscript(path: Path) -> tuple[Run, dict[str, str]]:
    extra_files = {EXPORT_METADATA_ENTRY: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files)
    metadata = torchscript_metadata(extra_files[EXPORT_METADATA_ENTRY], path)

    def run(*inputs: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(*(torch.from_numpy(_typed(x)) for x in inputs))
        return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else [out])]

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


def check_per_class(count: int) -> int:
    """--per-class: 1..MAX_SEEDS images of each class."""
    if not 1 <= count <= MAX_SEEDS:
        raise GenerateError(f"--per-class must be an integer in 1..{MAX_SEEDS}, got {count}")
    return count


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


def metadata_classes(metadata: dict[str, str], path: Path) -> list[str]:
    """The class names a conditional export's metadata declares ([] for an unconditional one,
    which declares none): ``num_classes`` in 2..MAX_CLASSES and ``class_names``, a JSON list of
    exactly that many valid names (genlab.checks.class_names: the file is someone else's)."""
    if metadata.get(NUM_CLASSES, "0").strip() == "0":
        return []
    count = metadata_int(metadata, NUM_CLASSES, path, 2, MAX_CLASSES)
    value = metadata.get(CLASS_NAMES, "")
    wanted = f"a JSON list of {count} distinct, short, printable class names"
    if len(value) > MAX_METADATA_CHARS:
        raise _bad_value(path, CLASS_NAMES, value, wanted)
    try:
        names = class_names(json.loads(value))
    except ValueError:
        names = None
    if names is None or len(names) != count:
        raise _bad_value(path, CLASS_NAMES, value, wanted)
    return names


def class_folder(index: int, name: str, num_classes: int) -> str:
    """A per-class folder's name: the zero-padded index, then the name reduced to ASCII letters,
    digits, ``-``, ``_`` and ``.`` (at most 40, no leading or trailing dot or dash): a class
    name is text from someone else's file, never a path (``../x``, ``/etc``, ``con``: the
    index prefix alone already keeps it inside the output folder). E.g. ``07-seven``."""
    prefix = f"{index:0{len(str(num_classes - 1))}d}"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:40].strip("._-")
    return f"{prefix}-{slug}" if slug else prefix


@dataclass
class ExportedGenerator:
    run: Run
    metadata: dict[str, str]
    source: Path
    mapping: Run | None = None
    synthesis: Run | None = None
    style: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | os.PathLike, *, trust_torchscript: bool = False) -> ExportedGenerator:
        """The generator file and, beside it, StyleGAN-lite's halves; every size the files
        declare is range-checked here, before it sizes a tensor or a loop."""
        path = Path(path)
        run, metadata = load_graph(path, trust_torchscript=trust_torchscript)
        metadata_int(metadata, LATENT_DIM, path, 1, MAX_LATENT_DIM)
        generator = cls(run, metadata, path, class_names=metadata_classes(metadata, path))
        mapping_file, synthesis_file = generator._file("mapping"), generator._file("synthesis")
        if mapping_file.is_file() and synthesis_file.is_file():
            generator.mapping, style_meta = load_graph(
                mapping_file, trust_torchscript=trust_torchscript
            )
            generator.synthesis, _ = load_graph(synthesis_file, trust_torchscript=trust_torchscript)
            generator.style = _style(style_meta, mapping_file)
            if metadata_classes(style_meta, mapping_file) != generator.class_names:
                raise GenerateError(
                    f"{mapping_file} names other classes than {path.name}: the files come "
                    f"from different exports; re-export the model (`dvc repro {EXPORT_STAGE}`)"
                )
        return generator

    @property
    def num_classes(self) -> int:
        """0 for an unconditional export."""
        return len(self.class_names)

    def class_list(self, limit: int = 200) -> str:
        """The valid classes for a message, ``0 'zero', 1 'one', ...``, cut short if many."""
        listed = ", ".join(f"{i} {_quoted(name)}" for i, name in enumerate(self.class_names))
        return printable(listed, limit)

    def require_classes(self, what: str) -> None:
        """A GenerateError unless the export is class-conditional."""
        if not self.num_classes:
            raise GenerateError(
                f"{what} needs a class-conditional export; {self.source.name} is an "
                f"unconditional model: it has no classes"
            )

    def class_index(self, value: str) -> int:
        """``--class``: a class name (matched exactly, first) or an index 0..num_classes-1."""
        self.require_classes("--class")
        if value in self.class_names:
            return self.class_names.index(value)
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 12:
            if int(text) < self.num_classes:
                return int(text)
            raise GenerateError(
                f"class index {text} is out of range for {self.source.name} "
                f"({self.num_classes} classes): valid classes are {self.class_list()}"
            )
        raise GenerateError(
            f"{self.source.name} has no class {_quoted(value)}: valid classes are "
            f"{self.class_list()}"
        )

    def default_labels(self, count: int, label: int | None = None) -> list[int | None]:
        """The class of each of ``count`` images: ``label`` for all when one is asked for,
        else balanced (0, 1, ..., C-1, 0, ...: models/standing_statistics.balanced_labels, the
        rule every sampler of the pipeline uses); None when unconditional."""
        if not self.num_classes:
            return [None] * count
        if label is not None:
            return [label] * count
        balanced = balanced_labels(count, self.num_classes)
        assert balanced is not None  # a conditional export
        return balanced.tolist()

    def class_provenance(self, label: int | None) -> dict[str, str]:
        """What a PNG made by one class records of it (nothing for an unconditional model)."""
        if label is None:
            return {}
        name_key, index_key = CLASS_KEYS
        return {name_key: printable(self.class_names[label], 200), index_key: str(label)}

    def _labels(self, label: int | None) -> tuple[np.ndarray, ...]:
        """The graph's extra input for one image: () unconditional, (int64 [label],) else."""
        if not self.num_classes:
            if label is not None:
                raise GenerateError(
                    f"{self.source.name} is an unconditional model: it takes no class"
                )
            return ()
        if label is None or not 0 <= label < self.num_classes:
            raise GenerateError(
                f"{self.source.name} is class-conditional: pass a class in "
                f"0..{self.num_classes - 1} (got {label})"
            )
        return (np.asarray([label], dtype=np.int64),)

    @property
    def latent_dim(self) -> int:
        return int(self.metadata[LATENT_DIM])

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

    def _images(
        self, run: Run, x: np.ndarray, part: str, labels: tuple[np.ndarray, ...] = ()
    ) -> np.ndarray:
        """Run one graph and check what came out is a batch of images genlab can save."""
        images = _run(run, (x, *labels), self._file(part))[0]
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

    def _ws(self, seed: int, psi: float, label: int | None = None) -> np.ndarray:
        """The seed's styles, truncated by ``psi`` towards w_avg, or for a conditional export
        towards the class's own centre (the mapping half's second output, ``w_centre``)."""
        w_avg = self.style["w_avg"]
        where = self._file("mapping")
        outputs = _run(self.mapping, (latent(seed, self.latent_dim), *self._labels(label)), where)
        w, centre = outputs[0], (outputs[1] if self.num_classes and len(outputs) > 1 else w_avg)
        if self.num_classes and len(outputs) < 2:
            raise GenerateError(
                f"{where}: a conditional mapping must also output its class centre (w_centre); "
                f"re-export the model (`dvc repro {EXPORT_STAGE}`)"
            )
        if w.shape != (1, len(w_avg)) or np.shape(centre)[-1:] != (len(w_avg),):
            raise GenerateError(
                f"{where}: the mapping outputs w of shape {w.shape}, "
                f"but its metadata says w_avg has {len(w_avg)} values; re-export the model"
            )
        w = centre + check_psi(psi) * (w - centre)
        return np.repeat(w[:, None, :], self.style["num_ws"], axis=1).astype(np.float32)

    def image(self, seed: int, psi: float | None = None, label: int | None = None) -> np.ndarray:
        """(C, H, W) in [-1, 1] for one seed (and, for a conditional export, one class): the
        same image whatever else is generated. ``psi`` needs style controls."""
        check_seed(seed)
        if psi is None:
            z = latent(seed, self.latent_dim)
            return self._images(self.run, z, "generator", self._labels(label))[0]
        self.require_styles("--psi")
        return self._images(self.synthesis, self._ws(seed, psi, label), "synthesis")[0]

    def images(
        self,
        seeds: Sequence[int],
        psi: float | None = None,
        labels: Sequence[int | None] | None = None,
    ) -> Iterator[np.ndarray]:
        """:meth:`image` of each seed, one at a time: up to MAX_SEEDS images of up to
        MAX_IMAGE_SIDE pixels a side are never all held at once. ``labels``: each seed's class
        (default :meth:`default_labels`: balanced for a conditional export)."""
        check_seeds(seeds)
        if psi is not None:
            self.require_styles("--psi")
        labels = self.default_labels(len(seeds)) if labels is None else labels
        if len(labels) != len(seeds):
            raise GenerateError(f"{len(labels)} classes for {len(seeds)} seeds")
        return (self.image(seed, psi, label) for seed, label in zip(seeds, labels, strict=True))

    def interpolate(
        self, seed_a: int, seed_b: int, steps: int, label: int | None = None
    ) -> Iterator[np.ndarray]:
        """``steps`` images along the slerp path from seed_a's latent to seed_b's, one at a
        time; a conditional export keeps ``label``'s class all along the path."""
        check_seeds([seed_a, seed_b])
        check_steps(steps)
        labels = self._labels(label)
        a, b = latent(seed_a, self.latent_dim), latent(seed_b, self.latent_dim)
        for t in np.linspace(0.0, 1.0, steps):
            z = slerp(a, b, t).astype(np.float32)
            yield self._images(self.run, z, "generator", labels)[0]

    def mix(
        self, seed_a: int, seed_b: int, psi: float | None = None, label: int | None = None
    ) -> Iterator[np.ndarray]:
        """One image per crossover 0..num_ws: the first k styles from seed_a, the rest from b
        (a conditional export maps both seeds with ``label``: one class in every image)."""
        self.require_styles("--mix")
        check_seeds([seed_a, seed_b])
        psi = self.style["truncation_psi"] if psi is None else psi
        ws_a, ws_b = self._ws(seed_a, psi, label), self._ws(seed_b, psi, label)
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


def _run(run: Run, inputs: tuple[np.ndarray, ...], path: Path) -> list[np.ndarray]:
    """One forward pass, every output; a graph that fails on the inputs its metadata asks for
    (a latent, and a class for a conditional one) is a bad file."""
    try:
        return [np.asarray(output) for output in run(*inputs)]
    except Exception as error:  # onnxruntime and torch.jit raise many types
        kind = type(error).__name__
        shapes = " and ".join(str(x.shape) for x in inputs)
        raise GenerateError(
            f"{path} failed on inputs of shape {shapes} ({kind}: {printable(str(error), 200)})"
        ) from error
