"""dvc.yaml's deps cover the code each stage runs, derived from the code (genlab.code_deps), and
the train stage's resume fingerprint hashes that same code."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from genlab.code_deps import import_closure, stage_code, stage_modules

from ..conftest import PROJECT_ROOT, compose_config_dir
from ..support.dvc_project import dvc_stages, run_files, stage_command

SRC = PROJECT_ROOT / "src"


def stage_files(address: str) -> tuple[str, list[Path]]:
    """(stage, the files it runs): the script of its command and the closure of its stage module
    under the config that command composes."""
    script, config = stage_command(address)
    stage = script.stem
    return stage, [PROJECT_ROOT / script, *stage_code(stage, config)]


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(PROJECT_ROOT)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


@pytest.mark.parametrize("address", sorted(dvc_stages()))
def test_dvc_deps_cover_the_code_each_stage_runs(address):
    _, files = stage_files(address)
    deps = dvc_stages()[address]["deps"]
    missing = [str(f.relative_to(PROJECT_ROOT)) for f in files if not covered(f, deps)]
    assert not missing, f"dvc.yaml: add to the deps of {address}: {missing}"


@pytest.mark.parametrize("address", sorted(dvc_stages()))
def test_dvc_deps_name_no_code_the_stage_does_not_run(address):
    """A dep on code the stage never imports re-runs it for nothing (and hides what it uses)."""
    _, files = stage_files(address)
    code_deps = [
        dep for dep in dvc_stages()[address]["deps"] if dep.startswith(("src/", "pipelines/"))
    ]
    unused = [dep for dep in code_deps if not any(covered(f, [dep]) for f in files)]
    assert not unused, f"dvc.yaml: {address} depends on code it does not run: {unused}"


def relative(files: list[Path]) -> set[str]:
    return {str(f.relative_to(SRC)) for f in files}


def test_training_code_includes_the_data_pipeline_and_not_the_report():
    config = OmegaConf.to_container(compose_config_dir("model=dcgan"), resolve=False)
    code = relative(stage_code("train", config))
    assert {"genlab/data/datamodule.py", "genlab/data/sampling.py"} <= code
    # built only from config: the networks, the callbacks
    assert {"genlab/networks/dcgan.py", "genlab/training/health.py"} <= code
    assert not any(f.startswith(("genlab/reporting", "genlab/evaluation")) for f in code)


def test_a_search_adds_its_objective_callback_to_the_training_code():
    config = OmegaConf.to_container(compose_config_dir("search=optuna"), resolve=False)
    assert "genlab.evaluation.objective" in stage_modules("train", config)
    assert "genlab/evaluation/fidelity.py" in relative(stage_code("train", config))


def test_function_level_and_relative_imports_are_followed(tmp_path, monkeypatch):
    import genlab.code_deps as code_deps

    package = tmp_path / "genlab"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub/__init__.py").write_text("from . import near\n")
    (package / "sub/near.py").write_text("def f():\n    from ..far import thing\n")
    (package / "far.py").write_text("thing = 1\n")
    (package / "unused.py").write_text("")
    monkeypatch.setattr(code_deps, "PACKAGE_DIR", package)
    monkeypatch.setattr(code_deps, "SOURCE_ROOT", tmp_path)
    code_deps._imports_in.cache_clear()
    try:
        found = {str(p.relative_to(tmp_path)) for p in import_closure(["genlab.sub"])}
    finally:
        code_deps._imports_in.cache_clear()
    assert found == {
        "genlab/__init__.py",
        "genlab/sub/__init__.py",
        "genlab/sub/near.py",
        "genlab/far.py",
    }


def resolved(*overrides: str) -> dict:
    return OmegaConf.to_container(compose_config_dir(*overrides), resolve=True)


def test_the_resume_fingerprint_hashes_code_the_train_stage_deps_cover():
    from genlab.training.checkpoints import training_code

    config = resolved("model=dcgan")
    code = training_code(config)
    deps = dvc_stages()[run_files("dcgan").stage("train")]["deps"]
    assert [str(f) for f in code if not covered(f, deps)] == []
    assert {"genlab/networks/dcgan.py", "genlab/training/reproducibility.py"} <= relative(code)
    assert not any(f.startswith(("genlab/reporting", "genlab/evaluation")) for f in relative(code))


def test_switching_a_callback_off_keeps_the_fingerprint_a_model_change_does_not():
    from genlab.training.checkpoints import training_code, training_fingerprint

    def fingerprint(*overrides: str) -> str:
        config = resolved(*overrides)
        return training_fingerprint(config, {"counts": 1}, training_code(config))

    default = fingerprint("model=dcgan")
    assert fingerprint("model=dcgan", "callbacks.health=null", "callbacks.progress_bar=null") == (
        default
    )
    assert fingerprint("model=dcgan", "model.ema_decay=0.9") != default
    assert fingerprint("model=vae") != default


def test_a_stage_validates_and_so_imports_only_the_targets_it_builds():
    """compare and report build nothing from config: their validation imports no model or
    training code (which their dvc.yaml deps do not cover)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from tests.conftest import compose_config_dir\n"
        "from genlab.config.validate import validate_config\n"
        "from genlab.stages import compare\n"
        "validate_config(compose_config_dir(), target_sections=compare.INSTANTIATES)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('genlab.training', "
        "'genlab.models', 'genlab.networks'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
