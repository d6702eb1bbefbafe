"""TorchScript export that is only published once the reloaded file matches eager output."""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.checks import MAX_LATENT_DIM, require_positive
from genlab.errors import ExportError
from genlab.export.graph_metadata import CLASS_NAMES
from genlab.io import atomic_path, torch_archive
from genlab.layout import EXPORT_METADATA_ENTRY


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """Hide the deprecation chatter of torch.jit / legacy ONNX; tracer warnings still show."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


@contextlib.contextmanager
def _eval_on_cpu(generator: nn.Module) -> Iterator[nn.Module]:
    """Export from CPU in eval mode, then give the caller's module back as it was."""
    was_training = generator.training
    first = next(generator.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    generator.eval().cpu()
    try:
        yield generator
    finally:
        generator.to(device).train(was_training)


def _batch_sizes(parity_batch: int) -> tuple[int, ...]:
    """The traced batch plus other sizes, so a graph frozen to one batch size is caught."""
    require_positive(parity_batch=parity_batch)
    sizes = (parity_batch, 1, 2 * parity_batch + 1)
    return tuple(dict.fromkeys(sizes))


InputShape = int | Sequence[int]
METADATA_FILE = EXPORT_METADATA_ENTRY
#: The most characters of metadata an export may carry: a TorchScript file's genlab.json
#: entry, an ONNX file's metadata as JSON. `genlab generate` refuses more (genlab.generate
#: imports this), so the export stage refuses to write it. w_avg as JSON is ~20 characters per
#: float of up to MAX_LATENT_DIM; class names take the rest.
MAX_METADATA_CHARS = 64 * MAX_LATENT_DIM


def metadata_json(metadata: Mapping[str, Any] | None) -> str:
    """``metadata`` as the JSON text a TorchScript export stores (keys sorted), refused with an
    ExportError when it is longer than `genlab generate` reads (MAX_METADATA_CHARS): better no
    export than one that every `genlab generate` refuses."""
    text = json.dumps(dict(metadata or {}), sort_keys=True)
    if len(text) > MAX_METADATA_CHARS:
        sizes = {str(key): len(json.dumps(value)) for key, value in (metadata or {}).items()}
        largest = max(sizes, key=sizes.__getitem__)
        raise ExportError(
            f"the export metadata is {len(text):,} characters as JSON, more than genlab "
            f"generate reads ({MAX_METADATA_CHARS:,}); the largest entry is {largest!r} "
            f"({sizes[largest]:,} characters): "
            + (
                'shorten the dataset\'s class names (meta.json "classes"; non-ASCII letters '
                "take 6 characters each) or use fewer classes, then re-train and export"
                if largest == CLASS_NAMES
                else "export a smaller model"
            )
        )
    return text


def _latents(input_shape: InputShape, sizes: Sequence[int], seed: int) -> list[torch.Tensor]:
    """Fixed normal inputs of per-sample ``input_shape``, one batch per size, from ``seed``."""
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    rng = torch.Generator().manual_seed(seed)
    return [torch.randn(n, *shape, generator=rng, dtype=torch.float32) for n in sizes]


def num_classes_of(module: nn.Module, num_classes: int | None = None) -> int:
    """``num_classes`` when given, else the module's own (0 for an unconditional network)."""
    found = getattr(module, "num_classes", 0) if num_classes is None else num_classes
    return int(found) if isinstance(found, int) else 0


def _parity_labels(sizes: Sequence[int], seed: int, num_classes: int) -> list[torch.Tensor]:
    """int64 class indices, one batch per size: distinct classes within a batch (cycling when
    the batch is larger than the class count), so a graph that ignores or freezes the label
    input is caught. An RNG of their own: the latents are those of an unconditional export."""
    rng = torch.Generator().manual_seed(seed + 1)
    return [torch.randperm(max(n, num_classes), generator=rng)[:n] % num_classes for n in sizes]


def _inputs(
    input_shape: InputShape, sizes: Sequence[int], seed: int, num_classes: int
) -> list[tuple[torch.Tensor, ...]]:
    """The parity inputs: ``(z,)`` per batch size, or ``(z, label)`` for a conditional network."""
    latents = _latents(input_shape, sizes, seed)
    if not num_classes:
        return [(z,) for z in latents]
    return list(zip(latents, _parity_labels(sizes, seed, num_classes), strict=True))


def _as_outputs(value: Any) -> list[torch.Tensor]:
    """One output or several (a tuple, as StyleGAN's conditional mapping half returns)."""
    items = value if isinstance(value, (tuple, list)) else [value]
    return [torch.as_tensor(item).detach().float().cpu() for item in items]


def _max_abs_diff(
    eager: nn.Module,
    exported: Callable[..., Any],
    inputs: Sequence[torch.Tensor | tuple[torch.Tensor, ...]],
) -> float:
    """Largest element-wise gap between eager and exported outputs over all input batches."""
    worst = 0.0
    for batch in inputs:
        args = batch if isinstance(batch, tuple) else (batch,)
        with torch.no_grad():
            wanted = _as_outputs(eager(*args))
            gotten = _as_outputs(exported(*args))
        if len(gotten) != len(wanted):
            raise ExportError(f"exported graph has {len(gotten)} outputs, eager {len(wanted)}")
        for got, want in zip(gotten, wanted, strict=True):
            if got.shape != want.shape:
                raise ExportError(
                    f"exported output shape {tuple(got.shape)} != eager {tuple(want.shape)} "
                    f"for batch size {args[0].shape[0]}"
                )
            gap = (got - want).abs().max().item()
            if math.isnan(gap):
                return gap  # NaN fails the parity check
            worst = max(worst, gap)
    return worst


def _check_parity(fmt: str, diff: float, atol: float, path: os.PathLike | str) -> None:
    if not diff <= atol:  # also rejects NaN
        raise ExportError(
            f"{fmt} export to {path} does not reproduce the eager generator: "
            f"max_abs_diff={diff:.3g} > atol={atol:g}. Data-dependent control flow or random "
            "sampling inside forward() cannot be traced; move it out of the generator."
        )


def export_torchscript(
    generator: nn.Module,
    input_shape: InputShape,
    path: str | os.PathLike,
    *,
    parity_seed: int = 0,
    parity_batch: int = 8,
    atol: float = 1e-4,
    metadata: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Trace ``generator`` to TorchScript at ``path``; publish only if the reloaded file matches.

    ``input_shape`` is one sample's input (the latent size for a generator). ``metadata`` is
    stored inside the file (``genlab.json``), read back by ``genlab.generate.torchscript_metadata``.
    A conditional generator (``num_classes``, default ``generator.num_classes``, > 0) is traced
    as ``forward(z, label)`` with int64 class indices, and checked on batches of mixed classes.

    Returns ``{"path", "max_abs_diff", "batch_sizes_checked"}``. Raises :class:`ExportError`
    (and leaves ``path`` untouched) when tracing fails or the parity check exceeds ``atol``.
    """
    target = Path(path)
    sizes = _batch_sizes(parity_batch)
    inputs = _inputs(input_shape, sizes, parity_seed, num_classes_of(generator, num_classes))
    extra_files = {METADATA_FILE: metadata_json(metadata)}
    with _eval_on_cpu(generator) as model, atomic_path(target) as tmp:
        traced = _trace(model, inputs[0])
        with _quiet_torch():
            # into a buffer, not the temporary file: its random name would name the archive
            tmp.write_bytes(
                torch_archive(
                    lambda buffer: torch.jit.save(traced, buffer, _extra_files=extra_files)
                )
            )
            reloaded = torch.jit.load(str(tmp), map_location="cpu")
        diff = _max_abs_diff(model, reloaded, inputs)
        _check_parity("TorchScript", diff, atol, target)
    return {"path": str(target), "max_abs_diff": diff, "batch_sizes_checked": list(sizes)}


def _trace(model: nn.Module, example: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
    """Trace without torch's own re-run check: the reloaded-file parity check is stricter."""
    args: torch.Tensor | tuple[torch.Tensor, ...] = example[0] if len(example) == 1 else example
    try:
        with _quiet_torch(), torch.no_grad():
            return torch.jit.trace(model, args, check_trace=False)
    except Exception as exc:  # torch raises many types here; callers only need ExportError
        raise ExportError(f"torch.jit.trace failed: {exc}") from exc
