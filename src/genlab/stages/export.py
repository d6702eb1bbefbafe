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

from genlab.io import atomic_dir, write_json
from genlab.models.generator_file import load_generator
from genlab.stages.train import GENERATOR_FILE
from genlab.tracking.wandb_setup import ModelArtifact, log_to_existing_run


def _headline(metrics: dict[str, Any] | None) -> dict[str, Any]:
    if metrics is None:
        return {}
    return {key: metrics.get(key) for key in ("extractor", "fid", "kid_mean", "isc_mean")}


def run_export(cfg: DictConfig) -> dict[str, Any]:
    from genlab.export.model_card import write_model_card
    from genlab.export.onnx import export_onnx
    from genlab.export.provenance import save_grid
    from genlab.export.style_parts import export_style_parts, has_style_controls
    from genlab.export.torchscript import export_torchscript

    generator, record = load_generator(Path(cfg.paths.run_dir) / GENERATOR_FILE)
    metrics_path = Path(cfg.paths.metrics_dir) / f"{cfg.model.name}.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    provenance = {
        "model": cfg.model.name,
        "run_id": record["run_id"],
        "config_hash": record["config_hash"],
        "code_version": record["code_version"],
        "created": created,
    }
    export_dir = Path(cfg.paths.export_dir)
    parity = dict(parity_seed=cfg.export.parity_seed, atol=cfg.export.parity_atol)
    # What `genlab generate` needs besides the graph: where it came from and its input size.
    file_metadata = {**provenance, "latent_dim": str(generator.latent_dim)}
    with atomic_dir(export_dir) as staging:
        torchscript = export_torchscript(
            generator,
            generator.latent_dim,
            staging / "generator.torchscript.pt",
            metadata=file_metadata,
            **parity,
        )
        onnx = export_onnx(
            generator,
            generator.latent_dim,
            staging / "generator.onnx",
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
            save_grid(generator(latents), staging / "samples.png", provenance)
        summary = {
            "torchscript": {**torchscript, "path": str(export_dir / "generator.torchscript.pt")},
            "onnx": {**onnx, "path": str(export_dir / "generator.onnx")},
            "samples": str(export_dir / "samples.png"),
            "latent_dim": generator.latent_dim,
            "style_controls": style_controls,
            "provenance": provenance,
        }
        write_json(staging / "export.json", summary)
        write_model_card(
            staging / "MODEL_CARD.md",
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
