"""The generator file: what evaluate and export rebuild the trained network from."""

from __future__ import annotations

import inspect
import json
import re

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors import safe_open

from genlab.errors import StageInputError
from genlab.layout import stage_instance
from genlab.models.generator_file import (
    ARGUMENTS,
    METADATA_KEY,
    NETWORKS,
    build_untrained,
    load_generator,
    network_arguments,
    save_generator,
)
from genlab.networks.dcgan import DCGANGenerator

from ..conftest import MODEL_NAMES, tiny_model_overrides

CONFIG = {
    "_target_": "genlab.networks.dcgan.DCGANGenerator",
    "latent_dim": 8,
    "base_channels": 4,
    "channels": 1,
    "image_size": 16,
}


def test_a_file_written_before_the_fingerprint_was_renamed_still_loads(tmp_path):
    """Records from before `config_hash` was renamed `training_fingerprint` keep working."""
    generator = DCGANGenerator(latent_dim=8, base_channels=4, channels=1, image_size=16)
    record = {"model": "dcgan", "run_id": "r1", "config_hash": "abc", "code_version": "v"}
    save_generator(tmp_path / "generator.safetensors", generator, CONFIG, record)
    _, loaded = load_generator(tmp_path / "generator.safetensors")
    assert loaded["training_fingerprint"] == "abc" and "config_hash" not in loaded
    assert loaded["run_id"] == "r1" and loaded["generator_config"] == CONFIG


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_model_family_round_trips_to_identical_samples(compose_config, tmp_path, model):
    """Each conf/model family's sampling network saves and loads to the same outputs."""
    cfg = compose_config(f"model={model}", *tiny_model_overrides(model))
    module = instantiate(cfg.model)
    network = module.sampling_generator().eval()
    with torch.no_grad():  # non-trivial buffers (BatchNorm statistics, StyleGAN's w_avg)
        for buffer in network.buffers():
            if buffer.is_floating_point():
                buffer.add_(torch.rand_like(buffer))
    config = OmegaConf.to_container(cfg.model[module.sampling_network_key], resolve=True)
    path = tmp_path / "generator.safetensors"
    classes = [str(index) for index in range(module.num_classes)]  # [] when unconditional
    record = {"model": model, "run_id": "r", "data_meta": {"classes": classes}}
    save_generator(path, network, config, record)
    loaded, record = load_generator(path, model=model)
    assert type(loaded) is type(network) and not loaded.training
    assert record["generator_config"] == config and record["class_names"] == classes
    assert getattr(loaded, "num_classes", 0) == module.num_classes
    z = torch.randn(3, network.latent_dim, generator=torch.Generator().manual_seed(0))
    labels = module.sample_labels(3)  # None when unconditional
    with torch.no_grad():
        if labels is None:
            assert torch.equal(loaded(z), network(z))
        else:
            assert torch.equal(loaded(z, labels), network(z, labels))
            assert not torch.equal(loaded(z, labels), loaded(z, labels.flip(0)))
    untrained = build_untrained(config, seed=0)
    assert type(untrained) is type(network)


CONDITIONAL = {**CONFIG, "num_classes": 3}


@pytest.mark.parametrize(
    "data_meta",
    [
        {},  # no classes recorded
        {"classes": []},
        {"classes": ["a", "b"]},  # fewer than the network's
        {"classes": ["a", "b", "c", "d"]},  # more
        {"classes": ["a", "b", "a"]},  # duplicates
        {"classes": ["a", "b", "c\x1b[2J"]},  # a terminal escape
        {"classes": ["a", "b\nERROR: fake", "c"]},  # a line break
        {"classes": ["a", "b", "x" * 65]},  # too long
        {"classes": "abc"},
        {"classes": [1, 2, 3]},
        "not an object",
    ],
)
def test_a_conditional_generator_without_valid_class_names_is_refused(tmp_path, data_meta):
    generator = DCGANGenerator(**{k: v for k, v in CONDITIONAL.items() if k != "_target_"})
    path = tmp_path / "generator.safetensors"
    save_generator(path, generator, CONDITIONAL, {"model": "dcgan", "data_meta": data_meta})
    with pytest.raises(StageInputError, match="conditioned on 3 classes") as caught:
        load_generator(path)
    assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)


def test_a_conditional_generator_loads_with_its_class_names(tmp_path):
    generator = DCGANGenerator(**{k: v for k, v in CONDITIONAL.items() if k != "_target_"})
    path = tmp_path / "generator.safetensors"
    names = ["cat", "dog", "fox"]
    save_generator(
        path, generator, CONDITIONAL, {"model": "dcgan", "data_meta": {"classes": names}}
    )
    loaded, record = load_generator(path)
    assert loaded.num_classes == 3 and record["class_names"] == names


def test_identical_weights_and_metadata_give_identical_bytes(tmp_path):
    """The file is byte-reproducible (safetensors orders several metadata keys at random, so
    genlab writes one key of sorted JSON) and the metadata is plain JSON."""
    torch.manual_seed(0)
    generator = DCGANGenerator(latent_dim=8, base_channels=4, channels=1, image_size=16)
    record = {"z": 1, "a": {"nested": [1, 2]}, "run_id": "r"}
    save_generator(tmp_path / "a.safetensors", generator, CONFIG, record)
    save_generator(tmp_path / "b.safetensors", generator, CONFIG, dict(reversed(record.items())))
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    with safe_open(tmp_path / "a.safetensors", "pt") as handle:
        metadata = handle.metadata()
    assert set(metadata) == {METADATA_KEY}
    document = json.loads(metadata[METADATA_KEY])
    assert document["network"] == CONFIG["_target_"] and document["latent_dim"] == 8
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, no leftovers


def test_every_allow_listed_argument_has_a_rule_and_every_default_passes_it():
    for network, cls in NETWORKS.items():
        parameters = inspect.signature(cls).parameters
        for name in network_arguments(network):
            assert name in ARGUMENTS, f"{network}.{name} has no rule"
            default = parameters[name].default
            assert ARGUMENTS[name].accepts(default), f"{network}.{name}={default!r}"


def test_every_conf_model_sampling_network_is_allow_listed():
    from hydra.utils import get_class

    from ..conftest import compose_config_dir

    for model in MODEL_NAMES:
        cfg = compose_config_dir(f"model={model}").model
        target = cfg[get_class(cfg._target_).sampling_network_key]._target_
        assert target in NETWORKS, f"model={model}: {target} is not on the allow-list"


def test_a_safetensors_file_without_genlab_metadata_is_refused(tmp_path):
    """Someone else's safetensors file (no genlab metadata) says what it is not."""
    from safetensors.torch import save_file

    from genlab.errors import StageInputError

    path = tmp_path / "generator.safetensors"
    save_file({"weight": torch.zeros(2)}, path, metadata={"format": "pt"})
    train = re.escape(stage_instance("train", "vae", 0))
    with pytest.raises(StageInputError, match=rf"no 'genlab' metadata.*dvc repro {train}\b"):
        load_generator(path, model="vae", seed=0)


def test_a_network_no_generator_file_may_name_is_refused_before_training():
    """The allow-list is checked when training starts, not when its result is saved."""
    from genlab.errors import ConfigError
    from genlab.models.generator_file import require_shareable

    with pytest.raises(ConfigError, match=r"`model.generator`: network 'my.own.Generator'"):
        require_shareable({"_target_": "my.own.Generator", "latent_dim": 8}, "generator")
