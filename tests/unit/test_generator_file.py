"""The generator file: what evaluate and export rebuild the trained network from."""

from __future__ import annotations

from genlab.models.generator_file import load_generator, save_generator
from genlab.networks.dcgan import DCGANGenerator

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
