"""export@<model>: TorchScript + ONNX with parity checks, a sample grid and a model card,
written into the export folder all at once."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from genlab import layout
from genlab.export.model_card import write_model_card
from genlab.export.onnx import export_onnx
from genlab.export.style_parts import export_style_parts, has_style_controls
from genlab.export.torchscript import export_torchscript
from genlab.io import atomic_dir, write_json
from genlab.models.generator_file import load_generator
from genlab.provenance import RUN_KEYS, save_grid
from genlab.stages.entry import stage_main
from genlab.tracking.wandb_setup import ModelArtifact, log_to_existing_run

# Config sections this stage builds objects from (genlab.code_deps follows their _target_s):
# the generator is rebuilt from the model config stored in generator.pt.
INSTANTIATES = ("model",)


def main(cfg: DictConfig) -> dict[str, Any]:
    return stage_main(run_export, cfg)


def _headline(metrics: dict[str, Any] | None) -> dict[str, Any]:
    if metrics is None:
        return {}
    return {key: metrics.get(key) for key in ("extractor", "fid", "kid_mean", "isc_mean")}


def run_export(cfg: DictConfig) -> dict[str, Any]:
    generator, record = load_generator(layout.RunLayout.at(cfg.paths.run_dir).generator)
    metrics_path = layout.metrics_file(cfg.paths.metrics_dir, cfg.model.name)
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    provenance = {**{key: record[key] for key in RUN_KEYS}, "model": cfg.model.name}
    provenance["created"] = created
    export_dir = Path(cfg.paths.export_dir)
    parity = dict(parity_seed=cfg.export.parity_seed, atol=cfg.export.parity_atol)
    # What `genlab generate` needs besides the graph: where it came from and its input size.
    file_metadata = {**provenance, "latent_dim": str(generator.latent_dim)}
    with atomic_dir(export_dir) as staging:
        torchscript = export_torchscript(
            generator,
            generator.latent_dim,
            staging / layout.EXPORT_TORCHSCRIPT,
            metadata=file_metadata,
            **parity,
        )
        onnx = export_onnx(
            generator,
            generator.latent_dim,
            staging / layout.EXPORT_ONNX,
            opset=cfg.export.onnx_opset,
            metadata=file_metadata,
            **parity,
        )
        style_controls = None
        if has_style_controls(generator):
            style_controls = export_style_parts(
                generator,
                staging,
                file_metadata,
                functools.partial(export_onnx, opset=cfg.export.onnx_opset),
                export_torchscript,
                **parity,
            )
        latents = torch.randn(
            cfg.export.grid_images,
            generator.latent_dim,
            generator=torch.Generator().manual_seed(cfg.export.parity_seed),
        )
        with torch.no_grad():
            save_grid(generator(latents), staging / layout.EXPORT_SAMPLES, provenance)
        summary = {
            "torchscript": {**torchscript, "path": str(export_dir / layout.EXPORT_TORCHSCRIPT)},
            "onnx": {**onnx, "path": str(export_dir / layout.EXPORT_ONNX)},
            "samples": str(export_dir / layout.EXPORT_SAMPLES),
            "latent_dim": generator.latent_dim,
            "style_controls": style_controls,
            "provenance": provenance,
        }
        write_json(staging / layout.EXPORT_RECORD, summary)
        write_model_card(
            staging / layout.MODEL_CARD,
            {
                "model_name": cfg.model.name,
                "family": record["config"]["model"]["_target_"],
                "run_id": record["run_id"],
                "created": created,
                "code_version": record["code_version"],
                "config": record["config"],
                "data": record["data_meta"],
                "metrics": metrics,
                "export": summary,
                "train": record["train"],
            },
        )
    log_to_existing_run(
        cfg.logger,
        cfg.paths.run_dir,
        record["run_id"],
        {"export/onnx_max_abs_diff": onnx["max_abs_diff"]},
        job_type="export",
        model_artifact=ModelArtifact(
            name=f"{cfg.model.name}-generator",
            files=sorted(path for path in export_dir.iterdir() if path.is_file()),
            description=f"genlab {cfg.model.name} generator: ONNX, TorchScript, model card",
            metadata={**provenance, "metrics": _headline(metrics)},
        ),
    )
    print(
        f"export {cfg.model.name}: torchscript max|diff|={torchscript['max_abs_diff']:.2e}, "
        f"onnx max|diff|={onnx['max_abs_diff']:.2e} -> {export_dir}"
    )
    return summary
