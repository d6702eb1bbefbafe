"""StyleGAN-lite's mapping and synthesis networks as separate exported graphs.

The exported z -> image graph bakes in the configured truncation and no style mixing. Exporting
the two halves lets `genlab generate` pick the truncation psi and mix the styles of two seeds
with nothing but onnxruntime or torch.jit: w_avg, num_ws and w_dim travel in the metadata.

A conditional generator's mapping half takes (z, label) and returns, beside w, ``w_centre``:
the label's class centre that truncation pulls towards (the generator's ``w_centre``), so the
per-class centres travel inside the graph, however many classes there are.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: a conditional mapping half's outputs: w and the class centre truncation pulls it towards
MAPPING_OUTPUTS = ("w", "w_centre")


class MappingPart(nn.Module):
    """z (B, latent_dim) -> w (B, w_dim)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator.mapping(z)


class ConditionalMappingPart(nn.Module):
    """(z (B, latent_dim), label (B,)) -> (w (B, w_dim), w_centre (B, w_dim))."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator
        self.num_classes = int(generator.num_classes)

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.generator.mapping(z, label)
        return w, self.generator.w_centre(label).expand_as(w)


class SynthesisPart(nn.Module):
    """ws (B, num_ws, w_dim) -> images (B, C, H, W)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.generator.synthesis(ws)


def has_style_controls(generator: nn.Module) -> bool:
    return all(hasattr(generator, name) for name in ("mapping", "synthesis", "w_avg", "num_ws"))


def style_metadata(generator: nn.Module) -> dict[str, str]:
    return {
        "num_ws": str(generator.num_ws),
        "w_dim": str(int(generator.w_avg.numel())),
        "w_avg": json.dumps(generator.w_avg.detach().cpu().tolist()),
        "truncation_psi": str(float(generator.truncation_psi)),
    }


def export_style_parts(
    generator: nn.Module,
    directory: Path,
    metadata: dict[str, str],
    export_onnx: Callable[..., dict[str, Any]],
    export_torchscript: Callable[..., dict[str, Any]],
    **parity: Any,
) -> dict[str, Any]:
    """mapping.{onnx,torchscript.pt} and synthesis.{...}, each parity-checked like the generator."""
    generator.eval()
    meta = {**metadata, **style_metadata(generator)}
    w_dim, num_ws = int(meta["w_dim"]), int(meta["num_ws"])
    if getattr(generator, "num_classes", 0):
        mapping = (ConditionalMappingPart(generator), generator.latent_dim, ("z", MAPPING_OUTPUTS))
    else:
        mapping = (MappingPart(generator), generator.latent_dim, ("z", "w"))
    parts = {
        "mapping": mapping,
        "synthesis": (SynthesisPart(generator), (num_ws, w_dim), ("ws", "images")),
    }
    report: dict[str, Any] = {"num_ws": num_ws, "w_dim": w_dim}
    for name, (module, input_shape, (input_name, output_name)) in parts.items():
        # eval, like the generator: the exporters hand a module back in the mode they found
        # it, and a wrapper left in train mode would put the generator in train mode too
        module.eval()
        part_meta = {**meta, "part": name}
        onnx_result = export_onnx(
            module,
            input_shape,
            directory / f"{name}.onnx",
            metadata=part_meta,
            input_name=input_name,
            output_name=output_name,
            **parity,
        )
        torchscript_result = export_torchscript(
            module, input_shape, directory / f"{name}.torchscript.pt", metadata=part_meta, **parity
        )
        report[name] = {
            "onnx_max_abs_diff": onnx_result["max_abs_diff"],
            "torchscript_max_abs_diff": torchscript_result["max_abs_diff"],
        }
    return report
