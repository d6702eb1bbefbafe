"""ONNX export that is only published once onnxruntime reproduces the eager generator."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx
import onnxruntime
import torch
from torch import nn

from genlab.errors import ExportError
from genlab.export.torchscript import (
    InputShape,
    _batch_sizes,
    _check_parity,
    _eval_on_cpu,
    _inputs,
    _max_abs_diff,
    _quiet_torch,
    metadata_json,
    num_classes_of,
)
from genlab.io import atomic_path

INPUT_NAME = "z"
#: a conditional generator's second input: int64 class indices, shape (batch,)
LABEL_NAME = "label"
OUTPUT_NAME = "images"


def export_onnx(
    generator: nn.Module,
    input_shape: InputShape,
    path: str | os.PathLike,
    *,
    opset: int = 17,
    parity_seed: int = 0,
    parity_batch: int = 8,
    atol: float = 1e-4,
    metadata: Mapping[str, str] | None = None,
    input_name: str = INPUT_NAME,
    output_name: str | Sequence[str] = OUTPUT_NAME,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Export ``generator`` (input ``z``, output ``images``, dynamic batch) to ONNX at ``path``.

    A conditional generator (``num_classes``, default ``generator.num_classes``, > 0) gets a
    second input ``label`` (int64 class indices, shape (batch,)) and is checked on batches of
    mixed classes; ``output_name`` may name several outputs. ``metadata`` is stored as ONNX
    ``metadata_props`` so the file says where it came from. Returns ``{"path",
    "max_abs_diff", "opset", "batch_sizes_checked"}``. Raises :class:`ExportError` (leaving
    ``path`` untouched) on export, checker or parity failure.
    """
    target = Path(path)
    metadata_json(metadata)  # no larger than `genlab generate` reads, checked before exporting
    sizes = _batch_sizes(parity_batch)
    conditional = num_classes_of(generator, num_classes) > 0
    inputs = _inputs(input_shape, sizes, parity_seed, num_classes_of(generator, num_classes))
    input_names = [input_name, LABEL_NAME] if conditional else [input_name]
    output_names = [output_name] if isinstance(output_name, str) else list(output_name)
    with _eval_on_cpu(generator) as model, atomic_path(target) as tmp:
        _export_graph(model, inputs[0], tmp, opset, (input_names, output_names))
        _stamp_and_check(tmp, metadata or {})
        diff = _max_abs_diff(model, _ort_runner(tmp), inputs)
        _check_parity("ONNX", diff, atol, target)
    return {
        "path": str(target),
        "max_abs_diff": diff,
        "opset": opset,
        "batch_sizes_checked": list(sizes),
    }


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, e.g. to check which run produced it."""
    model = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


def _export_graph(
    model: nn.Module,
    example: tuple[torch.Tensor, ...],
    tmp: Path,
    opset: int,
    names: tuple[list[str], list[str]],
) -> None:
    input_names, output_names = names
    try:
        with _quiet_torch(), torch.no_grad():
            torch.onnx.export(
                model,
                example,
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes={name: {0: "batch"} for name in [*input_names, *output_names]},
            )
    except Exception as exc:  # torch raises many types here; callers only need ExportError
        raise ExportError(f"torch.onnx.export failed: {exc}") from exc


def _stamp_and_check(tmp: Path, metadata: Mapping[str, str]) -> None:
    """Add provenance to the graph file, then validate it before anything runs it."""
    model = onnx.load(str(tmp))
    if metadata:
        onnx.helper.set_model_props(
            model, {str(k): str(v) for k, v in sorted(metadata.items())}
        )  # one order
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported ONNX model is invalid: {exc}") from exc
    onnx.save(model, str(tmp))


def _ort_runner(tmp: Path) -> Callable[..., Any]:
    """A callable running the saved file in onnxruntime on CPU, like the eager generator:
    its inputs in the graph's order, one output as a tensor, several as a tuple."""
    session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    input_names = [node.name for node in session.get_inputs()]

    def run(*inputs: torch.Tensor) -> Any:
        feed = {name: x.numpy() for name, x in zip(input_names, inputs, strict=True)}
        outputs = [torch.from_numpy(array) for array in session.run(None, feed)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    return run
