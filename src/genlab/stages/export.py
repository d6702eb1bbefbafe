"""export@<model>-<seed>: TorchScript + ONNX with parity checks, a sample grid, a signed C2PA
manifest beside every model file and a model card, written into the export folder all at once."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from genlab import credentials, layout
from genlab.errors import CredentialsError
from genlab.export.graph_metadata import (
    CLASS_NAMES,
    balanced_grid_size,
    class_facts,
    graph_metadata,
)
from genlab.export.model_card import write_model_card
from genlab.export.onnx import export_onnx
from genlab.export.style_parts import export_style_parts, has_style_controls
from genlab.export.torchscript import export_torchscript
from genlab.io import atomic_dir, file_digest, read_json_object, write_json
from genlab.metric_keys import flat_scores
from genlab.models.generator_file import load_generator
from genlab.models.standing_statistics import balanced_labels
from genlab.provenance import RUN_KEYS, claimed_time, save_grid
from genlab.stages.entry import stage_main
from genlab.tracking.wandb_setup import ModelArtifact, log_to_existing_run

# Config sections this stage builds objects from (genlab.code_deps follows their _target_s):
# the generator is rebuilt from the network named in generator.safetensors, which must be on
# genlab.models.generator_file's allow-list (nothing from the file reaches instantiate).
INSTANTIATES = ("model",)

# What the graph exporters write (generator.*, and StyleGAN's mapping.* / synthesis.*): every
# file with one of these suffixes in the export folder gets a detached C2PA manifest.
MODEL_SUFFIXES = (".onnx", ".pt")


def main(cfg: DictConfig) -> dict[str, Any]:
    return stage_main(run_export, cfg, INSTANTIATES)


def run_export(cfg: DictConfig) -> dict[str, Any]:
    generator_file = layout.RunLayout.at(cfg.paths.run_dir).generator
    generator, record = load_generator(generator_file, model=cfg.model.name, seed=cfg.seed)
    metrics = read_metrics(cfg)
    # a generator trained before a run key existed (dataset_hash) still exports, without it
    run_keys = {key: str(record[key]) for key in RUN_KEYS}
    provenance = {**run_keys, "model": cfg.model.name}
    # the training run's own time, never the clock: an export re-run writes the same bytes
    provenance["created"] = claimed_time(run_finished(record), written=generator_file)
    # first: a missing or unusable signing identity fails before minutes of export, not after
    identity = credentials.signing_identity()
    export_dir = Path(cfg.paths.export_dir)
    with atomic_dir(export_dir) as staging:
        classes = class_facts(generator, record)
        files = export_graphs(cfg, generator, staging, provenance, classes)
        # each model file's last change was its parity-checked write: now they are final
        signed = sign_model_files(staging, provenance, identity)
        save_sample_grid(cfg, generator, staging / layout.EXPORT_SAMPLES, provenance)
        summary = {
            "torchscript": {
                **files["torchscript"],
                "path": str(export_dir / layout.EXPORT_TORCHSCRIPT),
            },
            "onnx": {**files["onnx"], "path": str(export_dir / layout.EXPORT_ONNX)},
            "samples": str(export_dir / layout.EXPORT_SAMPLES),
            "latent_dim": generator.latent_dim,
            **classes,
            "style_controls": files["style_controls"],
            "provenance": provenance,
            "credentials": signed,
            "metrics": headline_metrics(metrics),
        }
        write_json(staging / layout.EXPORT_RECORD, summary)
        write_model_card(
            staging / layout.MODEL_CARD, model_card_facts(cfg, record, metrics, summary)
        )
    log_to_existing_run(
        cfg.logger,
        cfg.paths.run_dir,
        record["run_id"],
        {"export/onnx_max_abs_diff": summary["onnx"]["max_abs_diff"]},
        job_type="export",
        model_artifact=ModelArtifact(
            name=f"{cfg.model.name}-generator",
            files=sorted(
                path
                for path in export_dir.iterdir()
                if path.is_file() and path.name != layout.OUTPUT_MARKER
            ),
            description=(
                f"genlab {cfg.model.name} generator: ONNX, TorchScript, their C2PA manifests, "
                "model card"
            ),
            metadata={**provenance, "metrics": summary["metrics"]},
        ),
    )
    print(
        f"export {cfg.model.name}: torchscript "
        f"max|diff|={summary['torchscript']['max_abs_diff']:.2e}, "
        f"onnx max|diff|={summary['onnx']['max_abs_diff']:.2e} -> {export_dir}"
    )
    return summary


def run_finished(record: dict[str, Any]) -> str | None:
    """When the training run finished, as its train summary records it (None in a file
    written before it did: the generator file's own time stands in)."""
    train = record.get("train")
    finished = train.get("finished") if isinstance(train, dict) else None
    return str(finished) if finished else None


def read_metrics(cfg: DictConfig) -> dict[str, Any] | None:
    """The evaluate stage's scores, for the model card (None when not evaluated). A file that
    is not a JSON object is refused: the export would otherwise carry whatever it holds."""
    path = layout.metrics_file(cfg.paths.metrics_dir, cfg.paths.run_name)
    stage = layout.stage_instance("evaluate", cfg.model.name, cfg.seed)
    redo = f"re-run its evaluation (`dvc repro -f {stage}`)"
    return read_json_object(path, redo) if path.is_file() else None


def export_graphs(
    cfg: DictConfig,
    generator: torch.nn.Module,
    staging: Path,
    provenance: dict[str, str],
    classes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """TorchScript and ONNX of the generator (and StyleGAN's mapping / synthesis halves), each
    parity-checked against the eager network before it is written. A conditional generator's
    graphs take a second input, ``label`` (int64 class indices), and name their classes."""
    parity = dict(parity_seed=cfg.export.parity_seed, atol=cfg.export.parity_atol)
    # What `genlab generate` needs besides the graph: where it came from, its input size and,
    # for a conditional generator, its classes.
    file_metadata = graph_metadata(provenance, generator.latent_dim, classes)
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
    return {"torchscript": torchscript, "onnx": onnx, "style_controls": style_controls}


def sign_model_files(
    staging: Path, provenance: dict[str, str], identity: credentials.SigningIdentity
) -> dict[str, Any]:
    """A detached C2PA manifest (``<file>.c2pa``) beside every model file, bound to its bytes and
    naming the run, each checked to verify against the signer's own root before the folder is
    swapped in: an export whose manifests would not verify is not written at all.

    Returns export.json's ``credentials`` entry: the fingerprints a verifier compares and, per
    model file, its manifest and SHA-256."""
    anchors = [identity.anchor_pem]
    signed: dict[str, dict[str, str]] = {}
    for path in sorted(p for p in staging.iterdir() if p.suffix in MODEL_SUFFIXES):
        digest = file_digest(path)
        manifest = credentials.sign_detached(
            path, {**provenance, "file": path.name, "sha256": digest}
        )
        check = credentials.read_credentials(
            path.read_bytes(), credentials.mime_type(path), manifest.read_bytes(), anchors
        )
        if check.state != credentials.TRUSTED:
            raise CredentialsError(
                f"the manifest just signed for {path.name} does not verify against the signing "
                f"identity's own root ({check.state}: {', '.join(check.codes) or 'no code'}); "
                f"check the certificate chain in {identity.source} (`genlab keys show`), or "
                "create a new local identity with `genlab keys init --force`"
            )
        signed[path.name] = {"manifest": manifest.name, "sha256": digest}
    return {
        "format": "C2PA",
        "trust_anchor_fingerprint": identity.fingerprint,
        "signer_fingerprint": identity.signer_fingerprint,
        "files": signed,
    }


def save_sample_grid(
    cfg: DictConfig, generator: torch.nn.Module, path: Path, provenance: dict[str, str]
) -> None:
    """``export.grid_images`` samples; a conditional generator's are balanced over its classes,
    one class per column (rounded up to whole rows of every class)."""
    num_classes = int(getattr(generator, "num_classes", 0))
    count = balanced_grid_size(cfg.export.grid_images, num_classes)
    latents = torch.randn(
        count, generator.latent_dim, generator=torch.Generator().manual_seed(cfg.export.parity_seed)
    )
    labels = balanced_labels(count, num_classes)
    with torch.no_grad():
        if labels is None:
            save_grid(generator(latents), path, provenance)
        else:
            save_grid(generator(latents, labels), path, provenance, nrow=num_classes)


def model_card_facts(
    cfg: DictConfig,
    record: dict[str, Any],
    metrics: dict[str, Any] | None,
    summary: dict[str, Any],
) -> dict[str, Any]:
    return {
        "model_name": cfg.model.name,
        "run_name": cfg.paths.run_name,  # the export folder's name, in the verify command
        "family": record["config"]["model"]["_target_"],
        "run_id": record["run_id"],
        "created": summary["provenance"]["created"],
        "code_version": record["code_version"],
        "config": record["config"],
        "data": record["data_meta"],
        "class_names": summary[CLASS_NAMES],
        "metrics": metrics,
        "export": summary,
        "train": record["train"],
    }


def headline_metrics(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The evaluate stage's scores in short, for export.json and the W&B model artifact: the
    extractor, every score and the bounds of each interval as flat keys (fid_low, fid_high,
    ...); a score or interval the metrics file does not hold (written before it existed, or
    with bootstrap.rounds=0) reads None."""
    if metrics is None:
        return {}
    return {"extractor": metrics.get("extractor"), **flat_scores(metrics)}
