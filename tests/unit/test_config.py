"""Bad configuration fails before any work, naming the key and the valid choices."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException, HydraException

from genlab.config.validate import validate_config
from genlab.errors import ConfigError

from ..conftest import PROJECT_ROOT


def test_default_config_is_valid(compose_config):
    validate_config(compose_config())


@pytest.mark.parametrize(
    "group,option",
    [
        ("data", "mnist"),
        ("data", "fashion_mnist"),
        ("data", "cifar10"),
        ("metrics", "inception"),
        ("logger", "csv"),
        ("trainer", "ddp"),
        ("trainer", "gpu"),
    ],
)
def test_every_group_option_validates(compose_config, group, option):
    validate_config(compose_config(f"{group}={option}"))


@pytest.mark.parametrize(
    "override,expected",
    [
        ("data.batch_size=0", "`data.batch_size` must be > 0"),
        ("data.batch_size=abc", "data.batch_size"),
        ("data.image_size=-32", "`data.image_size` must be >= 8"),
        ("evaluate.num_samples=-1", "evaluate.num_samples"),
        ("train.steps=0", "`train.steps` must be > 0"),
        ("model.generator.latent_dim=abc", "`model.generator.latent_dim` has the wrong type"),
        ("model.generator.latent_dim=2.5", "expected int, got float"),
        ("+model.generator.latentdim=8", "Unknown key `model.generator.latentdim`"),
        ("+data.batchsize=8", "data.batchsize"),
        ("logger.mode=sometimes", "`logger.mode` must be one of"),
        ("data.channels=2", "1 (gray) or 3 (RGB)"),
        ("evaluate.bootstrap.rounds=1", "`evaluate.bootstrap.rounds` must be 0 (no intervals) or"),
        ("evaluate.bootstrap.rounds=-2", "`evaluate.bootstrap.rounds`"),
        ("evaluate.bootstrap.level=1.5", "`evaluate.bootstrap.level` must be in (0, 1)"),
        ("evaluate.bootstrap.level=0", "`evaluate.bootstrap.level` must be in (0, 1)"),
        ("evaluate.nearest_k=0", "`evaluate.nearest_k` must be > 0"),
        ("evaluate.sample_counts=[1]", "`evaluate.sample_counts` must be counts >= 2"),
        ("evaluate.sample_counts=[500,1]", "`evaluate.sample_counts`"),
        ("evaluate.sample_count_draws=0", "`evaluate.sample_count_draws` must be > 0"),
        ("evaluate.bootstrap.seed=-1", "`evaluate.bootstrap.seed` must be >= 0"),
        ("evaluate.num_samples=3", "`evaluate.num_samples` must be > evaluate.nearest_k (3)"),
    ],
)
def test_bad_values_are_rejected_with_the_key(compose_config, override, expected):
    with pytest.raises(ConfigError) as caught:
        validate_config(compose_config(override))
    assert expected in str(caught.value)


def test_unknown_key_lists_valid_arguments(compose_config):
    with pytest.raises(ConfigError) as caught:
        validate_config(compose_config("+model.discriminator.widht=3"))
    assert "base_channels" in str(caught.value) and "image_size" in str(caught.value)


def test_misspelt_group_option_names_the_choices(compose_config):
    with pytest.raises(ConfigCompositionException) as caught:
        compose_config("model=dcgna")
    assert "dcgan" in str(caught.value)


def test_override_of_missing_key_is_refused(compose_config):
    with pytest.raises(HydraException) as caught:
        compose_config("train.stepz=3")
    assert "stepz" in str(caught.value)


BAD_OVERRIDES = {
    "out of range": ("data.batch_size=0", "`data.batch_size` must be > 0"),
    "wrong type": ("data.batch_size=abc", "could not be converted to Integer"),
    "unknown key": ("data.batch_sise=3", "Key 'batch_sise' is not in struct"),
    "misspelt group option": ("model=dcgam", "Available options in 'model'"),
}


def train_script(tmp_path, override: str) -> subprocess.CompletedProcess:
    """The real entry point with one override, run folder and Hydra folder in ``tmp_path``."""
    return subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "pipelines" / "train.py"),
            override,
            f"paths.run_dir={tmp_path / 'run'}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize("case", sorted(BAD_OVERRIDES))
def test_stage_script_exits_nonzero_before_any_work(tmp_path, case):
    """The real entry point: bad input -> non-zero exit, message on stderr, nothing written."""
    override, message = BAD_OVERRIDES[case]
    result = train_script(tmp_path, override)
    assert result.returncode != 0, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_value_a_constructor_refuses_is_named_by_hydras_key_and_the_domain_rule(tmp_path):
    """Constructors state the rule in their own terms; Hydra names the config node (full_key)."""
    result = train_script(tmp_path, "model.generator.base_channels=0")
    assert result.returncode == 2, result.stderr
    assert "base_channels must be a positive integer, got 0" in result.stderr
    assert "full_key: model.generator" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override",
    [
        "evaluate.bootstrap.rounds=0",  # no intervals
        "evaluate.bootstrap.rounds=2",
        "evaluate.sample_counts=[]",  # no sample-count curve
        "evaluate.sample_counts=[2,100000]",  # counts above num_samples are reported skipped
        "evaluate.nearest_k=1",
    ],
)
def test_edge_evaluate_settings_are_accepted(compose_config, override):
    validate_config(compose_config(override))


def test_fp16_mixed_precision_on_cpu_is_refused(compose_config):
    cfg = compose_config("trainer=cpu", "trainer.precision=16-mixed")
    with pytest.raises(ConfigError, match="bf16-mixed"):
        validate_config(cfg)
    validate_config(compose_config("trainer=cpu", "trainer.precision=bf16-mixed"))
