"""StyleGAN-lite's mapping and synthesis networks as separate exported graphs.

The exported z -> image graph bakes in the configured truncation and no style mixing. Exporting
the two halves lets `genlab generate` pick the truncation psi and mix the styles of two seeds
with nothing but onnxruntime or torch.jit: w_avg, num_ws and w_dim travel in the metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn


class MappingPart(nn.Module):
    """z (B, latent_dim) -> w (B, w_dim)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator.mapping(z)


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
    parts = {
        "mapping": (MappingPart(generator), generator.latent_dim, ("z", "w")),
        "synthesis": (SynthesisPart(generator), (num_ws, w_dim), ("ws", "images")),
    }
    report: dict[str, Any] = {"num_ws": num_ws, "w_dim": w_dim}
    for name, (module, input_shape, (input_name, output_name)) in parts.items():
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
