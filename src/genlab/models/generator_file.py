"""The trained sampler as one self-describing file: tensors plus plain JSON, never code.

``generator.safetensors`` holds the sampling network's state dict as safetensors and, in the
header's metadata, one JSON document: the format version, the network as a name from an
allow-list of genlab classes, its constructor arguments (checked scalars), ``latent_dim`` and
the run record. Generator files are shared (``dvc push``, W&B), so reading one must not run
anything the file chose: the allow-listed class is called directly with validated arguments
(no Hydra ``instantiate``, no unpickling), and the tensors must fit that network exactly and be
finite. Evaluate and export rebuild the generator from this file, not from conf/, so they
always describe the network that was actually trained.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from genlab.checks import MAX_CLASSES, MAX_LATENT_DIM, as_mapping, class_names
from genlab.errors import ConfigError, StageInputError
from genlab.io import atomic_path
from genlab.layout import OLD_GENERATOR_FILE, stage_instance
from genlab.networks.dcgan import DCGANGenerator
from genlab.networks.stylegan import StyleGANGenerator
from genlab.networks.vae import DECODER_OUTPUTS, ConvDecoder

FORMAT = "genlab-generator"
FORMAT_VERSION = 2
METADATA_KEY = "genlab"  # one key: safetensors writes several metadata keys in random order

#: The only networks a generator file may name: config ``_target_`` -> class.
NETWORKS: dict[str, type[nn.Module]] = {
    "genlab.networks.dcgan.DCGANGenerator": DCGANGenerator,
    "genlab.networks.vae.ConvDecoder": ConvDecoder,
    "genlab.networks.stylegan.StyleGANGenerator": StyleGANGenerator,
}


@dataclass(frozen=True)
class Argument:
    """What one constructor argument may be: an int or float in [low, high], a bool, or one of
    a fixed set of strings. Sizes are capped so a file cannot ask for a huge allocation."""

    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    check: Callable[[Any], bool] | None = None
    rule: str = ""

    def accepts(self, value: Any) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, str) and value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return False
        return self.check is None or self.check(value)

    def describe(self) -> str:
        if self.kind is str:
            return f"one of {list(self.choices)}"
        if self.kind is bool:
            return "true or false"
        return (
            f"{'an integer' if self.kind is int else 'a number'} in [{self.low}, {self.high}]"
            + (f", {self.rule}" if self.rule else "")
        )


def _power_of_two(value: int) -> bool:
    return value & (value - 1) == 0


#: Rules by argument name, shared by every allow-listed network. A new network argument needs
#: a rule here (tests check that every allow-listed signature is covered).
ARGUMENTS: dict[str, Argument] = {
    "latent_dim": Argument(int, 1, MAX_LATENT_DIM),
    "base_channels": Argument(int, 1, 4096),
    "max_channels": Argument(int, 1, 8192),
    "channels": Argument(int, 1, 4),
    "image_size": Argument(int, 8, 1024, check=_power_of_two, rule="a power of two"),
    "w_dim": Argument(int, 1, MAX_LATENT_DIM),
    "mapping_depth": Argument(int, 1, 32),
    "mapping_lr_multiplier": Argument(float, 1e-6, 10.0),
    "style_mixing_prob": Argument(float, 0.0, 1.0),
    "truncation_psi": Argument(float, -2.0, 2.0),
    "w_avg_beta": Argument(float, 0.0, 1.0),
    "output": Argument(str, choices=tuple(DECODER_OUTPUTS)),
    "num_classes": Argument(int, 0, MAX_CLASSES),
}


def network_arguments(network: str) -> set[str]:
    """The constructor arguments an allow-listed network takes (its signature, minus self)."""
    parameters = inspect.signature(NETWORKS[network]).parameters.values()
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_network_config(config: Any) -> tuple[type[nn.Module], dict[str, Any]]:
    """``{"_target_": <allow-listed network>, **scalar arguments}`` -> (class, arguments).

    Raises ValueError naming what is not allowed; nothing is imported or called.
    """
    if not isinstance(config, dict):
        raise ValueError(f"the network config must be a mapping, got {type(config).__name__}")
    network = config.get("_target_")
    if not isinstance(network, str) or network not in NETWORKS:
        raise ValueError(
            f"network {network!r} is not on genlab's allow-list of generator networks "
            f"{sorted(NETWORKS)}"
        )
    arguments = {key: value for key, value in config.items() if key != "_target_"}
    allowed = network_arguments(network)
    for name, value in arguments.items():
        if name not in allowed:
            raise ValueError(f"{network} takes no argument {name!r} (it takes {sorted(allowed)})")
        rule = ARGUMENTS.get(name)
        if rule is None:
            raise ValueError(
                f"argument {name!r} of {network} has no rule in genlab.models.generator_file."
                f"ARGUMENTS; add one to save or load this network"
            )
        if not rule.accepts(value):
            raise ValueError(
                f"argument {name}={json.dumps(value)[:80]} of {network} is not allowed: it "
                f"must be {rule.describe()}"
            )
    return NETWORKS[network], arguments


def require_shareable(config: dict[str, Any], key: str) -> None:
    """Refuse, before any training, a sampling network no generator file may name: found only
    at the end, it would cost the whole run."""
    try:
        check_network_config(config)
    except ValueError as error:
        raise ConfigError(
            f"`model.{key}`: {error}. A generator file names only the networks in "
            f"genlab.models.generator_file.NETWORKS: add a new network there, with a rule in "
            f"ARGUMENTS for each of its arguments"
        ) from None


def _build(config: dict[str, Any]) -> nn.Module:
    """The allow-listed class called directly with checked arguments: never ``instantiate``."""
    cls, arguments = check_network_config(config)
    return cls(**arguments)


def save_generator(
    path: str | os.PathLike,
    generator: nn.Module,
    generator_config: dict[str, Any],
    record: dict[str, Any],
) -> None:
    """Write the file atomically; identical weights and metadata give identical bytes."""
    try:
        check_network_config(generator_config)
    except ValueError as error:
        raise StageInputError(f"cannot save the generator to {path}: {error}") from error
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "network": generator_config["_target_"],
        "arguments": {k: v for k, v in generator_config.items() if k != "_target_"},
        "latent_dim": int(generator.latent_dim),
        "record": record,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    metadata = {METADATA_KEY: text}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in generator.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def _retrain(model: str | None, seed: int | None = None) -> str:
    stage = stage_instance("train", model or "<model>", seed)
    return f"re-run training (`dvc repro {stage}`) to write it again"


def _is_pickle(path: Path) -> bool:
    """torch.save writes a zip or, in its legacy format, a bare pickle (PROTO opcode 0x80).

    Only asked about a file that is not valid safetensors, to say what it is.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
    return head == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05")


def _refuse_pickle(path: Path, model: str | None, seed: int | None) -> StageInputError:
    return StageInputError(
        f"{path} is a pickle (genlab's old generator.pt format, or a file made to run code "
        f"when loaded); genlab does not unpickle generator files. Delete it and "
        f"{_retrain(model, seed)} in the safetensors format"
    )


def load_generator(
    path: str | os.PathLike, model: str | None = None, seed: int | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Return (generator in eval mode, the run record stored with it).

    The record also carries ``generator_config``, so a caller can build the same network fresh
    (``build_untrained``). ``model`` and ``seed`` name the run (and the stage that trains it)
    in error messages.
    """
    path = Path(path)
    if not path.is_file():
        old = path.with_name(OLD_GENERATOR_FILE)
        if old.is_file():
            raise _refuse_pickle(old, model, seed)
        raise StageInputError(
            f"{path} does not exist: train the model first (`dvc repro "
            f"{stage_instance('train', model or '<model>', seed)}` or `python pipelines/train.py "
            f"model={model or '<model>'}{'' if seed is None else f' seed={seed}'}`)"
        )
    try:  # parses the header only; safetensors never unpickles
        opened = safe_open(path, framework="pt", device="cpu")
    except (SafetensorError, OSError) as error:
        if _is_pickle(path):
            raise _refuse_pickle(path, model, seed) from None
        raise StageInputError(
            f"{path} is corrupt or incomplete ({type(error).__name__}: {error}); "
            f"{_retrain(model, seed)}"
        ) from error
    try:
        with opened as handle:
            metadata = handle.metadata() or {}
            if METADATA_KEY not in metadata:
                raise ValueError(f"it has no {METADATA_KEY!r} metadata: not a genlab generator")
            document = json.loads(metadata[METADATA_KEY])
            config, latent_dim, record = _read_document(document)
            with torch.device("meta"):  # shapes only: no memory, no initialisation
                expected = _build(config).state_dict()
            _check_layout(handle, expected)
            state = {name: handle.get_tensor(name) for name in expected}
    except (SafetensorError, OSError, json.JSONDecodeError) as error:
        raise StageInputError(
            f"{path} is corrupt or incomplete ({type(error).__name__}: {error}); "
            f"{_retrain(model, seed)}"
        ) from error
    except (ValueError, TypeError, RuntimeError) as error:
        raise StageInputError(
            f"{path} is not a generator genlab can load: {error}; {_retrain(model, seed)}"
        ) from error
    non_finite = [n for n, t in state.items() if t.is_floating_point() and not t.isfinite().all()]
    if non_finite:
        raise StageInputError(
            f"{path} holds non-finite weights (NaN/inf) in {', '.join(non_finite[:5])}: training "
            f"diverged or the file was altered; {_retrain(model, seed)} (a lower "
            f"model.optim.lr helps if training diverged)"
        )
    with torch.random.fork_rng(devices=[]):  # building draws an initialisation: not the caller's
        generator = _build(config)
    generator.load_state_dict(state, strict=True)
    if int(generator.latent_dim) != latent_dim:
        raise StageInputError(
            f"{path} says latent_dim={latent_dim} but its network takes "
            f"{generator.latent_dim}; {_retrain(model, seed)}"
        )
    generator.eval().requires_grad_(False)
    names = recorded_class_names(record, int(getattr(generator, "num_classes", 0)))
    if names is None:
        raise StageInputError(
            f"{path} holds a generator conditioned on {generator.num_classes} classes but its "
            f"record's data_meta.classes does not name them (a list of that many distinct, "
            f"short, printable names); {_retrain(model, seed)}"
        )
    if "config_hash" in record:  # written before the key was named for what it holds
        record.setdefault("training_fingerprint", record.pop("config_hash"))
    # files trained before the dataset hash was recorded: every RUN_KEYS entry is present
    record.setdefault("dataset_hash", "not recorded (trained before genlab recorded it)")
    return generator, {**record, "generator_config": config, "class_names": names}


def recorded_class_names(record: dict[str, Any], num_classes: int) -> list[str] | None:
    """The names of the classes a generator is conditioned on, from its run record's dataset
    metadata (``[]`` for an unconditional one), or None when the record does not name exactly
    ``num_classes`` valid ones. The one place later stages get class names from."""
    if not num_classes:
        return []
    names = class_names(as_mapping(record.get("data_meta")).get("classes"))
    return names if names is not None and len(names) == num_classes else None


def _read_document(document: Any) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """The metadata's (network config, latent_dim, record), each checked for its type."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"its metadata is not a {FORMAT} document")
    if document.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"it is format version {document.get('format_version')!r}; this genlab reads "
            f"version {FORMAT_VERSION}"
        )
    arguments, record = document.get("arguments"), document.get("record")
    latent_dim = document.get("latent_dim")
    if not isinstance(arguments, dict) or not isinstance(record, dict):
        raise ValueError("its metadata's arguments and record must be JSON objects")
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int):
        raise ValueError(f"its latent_dim must be an integer, got {latent_dim!r}")
    if "_target_" in arguments:
        raise ValueError("its arguments may not contain _target_")
    config = {"_target_": document.get("network"), **arguments}
    check_network_config(config)
    return config, latent_dim, record


def _check_layout(handle: Any, expected: dict[str, torch.Tensor]) -> None:
    """The file's tensor names, shapes and dtypes must be exactly the network's."""
    present = set(handle.keys())
    missing, unexpected = sorted(set(expected) - present), sorted(present - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"its tensors do not fit the network: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}"
        )
    for name, tensor in expected.items():
        piece = handle.get_slice(name)
        shape, dtype = tuple(piece.get_shape()), piece.get_dtype()
        wanted = str(tensor.dtype).removeprefix("torch.")
        if shape != tuple(tensor.shape) or _dtype_name(dtype) != wanted:
            raise ValueError(
                f"tensor {name} is {dtype} {list(shape)}, the network needs {wanted} "
                f"{list(tensor.shape)}"
            )


_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


def _dtype_name(safetensors_dtype: str) -> str:
    return _SAFETENSORS_DTYPES.get(safetensors_dtype, safetensors_dtype)


def build_untrained(generator_config: dict[str, Any], seed: int) -> nn.Module:
    """The network as initialised before training: the reference a trained model must beat.

    Built by the same allow-listed builder as ``load_generator``: the config comes from a file.
    """
    try:
        check_network_config(generator_config)
    except ValueError as error:
        raise StageInputError(f"cannot build the untrained baseline network: {error}") from error
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = _build(generator_config)
    return generator.eval().requires_grad_(False)
