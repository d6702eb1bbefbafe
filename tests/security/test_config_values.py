"""Config values from others (a shared conf/ file, an override in a script, a DVC experiment)
and the versions of the libraries that read shared files: nothing non-finite reaches training,
and no dependency floor allows a release with a known hole in what genlab relies on."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from genlab.config.validate import validate_config
from genlab.errors import ConfigError

from ..conftest import PROJECT_ROOT
from ..unit.test_config import train_script

try:
    import tomllib
except ImportError:  # Python 3.10: the same parser, vendored by pip
    from pip._vendor import tomli as tomllib

# The release that fixed what genlab relies on, and why.
FIXED_RELEASES = {
    # torch.load(weights_only=True) bypass that runs code (CVE-2025-32434)
    "torch": "2.6",
    # built against torch 2.6
    "torchvision": "0.21",
    # instantiate's _target_ blocklist (1.3.4) and its alias bypass (GHSA-37p2, 1.3.6); 1.3.8
    # is the release tested here, with the later hardening of the same check
    "hydra-core": "1.3.8",
    # decompression bombs (FITS GZIP CVE-2026-40192 in 12.2.0; PDF, fonts, GD in 12.3.0)
    "pillow": "12.3",
    # path traversal through external data (CVE-2024-27318, 1.16; CVE-2026-27489 via symlinks
    # and ExternalDataInfo injection CVE-2026-34445, 1.21)
    "onnx": "1.21",
}


def _floors() -> dict[str, Requirement]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return {requirement.name.lower(): requirement for requirement in requirements}


def _floor(requirement: Requirement) -> Version | None:
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    return max(floors) if floors else None


@pytest.mark.parametrize("package", sorted(FIXED_RELEASES))
def test_dependency_floors_exclude_releases_with_known_holes(package):
    """Row 18: a fresh install may resolve any version the floors allow; below the fixed
    releases a crafted checkpoint (torch), config (hydra), image (pillow) or ONNX file (onnx)
    escapes the checks genlab relies on."""
    requirement = _floors()[package]
    floor = _floor(requirement)
    fixed = Version(FIXED_RELEASES[package])
    assert floor is not None and floor >= fixed, f"{requirement}: floor must be >= {fixed}"
    installed = Version(version(package))
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"installed {package} {installed} does not satisfy {requirement}"
    )


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.optim.lr=nan", "model.optim.lr"),
        ("model.optim.lr=inf", "model.optim.lr"),
        ("model.optim.lr=-inf", "model.optim.lr"),
        ("model.optim.lr=0", "model.optim.lr"),
        ("model.optim.lr=-0.001", "model.optim.lr"),
        ("model.ema_decay=nan", "model.ema_decay"),
        ("export.parity_atol=inf", "export.parity_atol"),
        ("logger.init_timeout=inf", "logger.init_timeout"),
        ("evaluate.memorization.quantile=nan", "evaluate.memorization.quantile"),
        ("metrics.classifier.lr=nan", "metrics.classifier.lr"),
    ],
)
def test_non_finite_numbers_and_non_positive_learning_rates_are_refused(
    compose_config, override, key
):
    """Row 20: NaN compares false with everything, so `lr > 0`-style checks and the
    signature check of `_target_` nodes let `model.optim.lr=nan` through to a training run that
    produces NaN weights (or an infinite parity tolerance that accepts any export)."""
    with pytest.raises(ConfigError) as caught:
        validate_config(compose_config(override))
    assert f"`{key}`" in str(caught.value)


def test_train_script_refuses_a_nan_learning_rate_before_any_work(tmp_path):
    """Row 20, through the real entry point: exit 2, the key named, nothing written."""
    result = train_script(tmp_path, "model.optim.lr=nan")  # the default model: dcgan
    assert result.returncode == 2, result.stderr[-2000:]
    assert "`model.optim.lr`" in result.stderr and "finite" in result.stderr
    assert not (tmp_path / "run").exists()
