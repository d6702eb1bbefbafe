"""W&B never fails a run: no credentials or no server means offline, with one line on syncing."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from genlab.tracking.wandb_setup import log_to_existing_run, make_wandb_logger, resolve_mode


def logger_config(**overrides):
    base = dict(
        backend="wandb",
        project="genlab-test",
        entity=None,
        mode="auto",
        group=None,
        tags=["test"],
        init_timeout=3,
    )
    return OmegaConf.create({**base, **overrides})


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def online_intent(monkeypatch):
    """Credentials present and WANDB_MODE unset: what a user with `wandb login` has."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)


def test_explicit_environment_wins(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("online", 1)[0] == "disabled"


def test_no_credentials_means_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    mode, reason = resolve_mode("auto", 1)
    assert mode == "offline" and "credentials" in reason


def test_unreachable_server_means_offline(online_intent, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    mode, reason = resolve_mode("auto", 1)
    assert mode == "offline" and "unreachable" in reason


@pytest.mark.slow
def test_server_that_is_not_wandb_falls_back_offline(online_intent, monkeypatch, tmp_path, caplog):
    """A port that accepts and hangs up: the online start fails, the run logs offline."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(30)

    def hang_up() -> None:
        try:
            while True:
                connection, _ = server.accept()
                connection.close()
        except OSError:
            return

    threading.Thread(target=hang_up, daemon=True).start()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
    try:
        with caplog.at_level(logging.WARNING):
            wandb_logger = make_wandb_logger(
                logger_config(), tmp_path, "fallback1", "name", {"lr": 0.1}
            )
        assert wandb_logger is not None
        wandb_logger.log_metrics({"train/loss": 1.5}, step=1)
        wandb_logger.finalize("success")
        wandb_logger.experiment.finish()
    finally:
        server.close()
    lines = [r.getMessage() for r in caplog.records if "W&B: logging offline" in r.getMessage()]
    assert len(lines) == 1 and "online start failed" in lines[0] and "wandb sync" in lines[0]
    assert list(Path(tmp_path, "wandb").glob("offline-run-*-fallback1/run-fallback1.wandb"))


def test_offline_run_and_evaluation_share_the_id(tmp_path):
    wandb_logger = make_wandb_logger(logger_config(mode="offline"), tmp_path, "shared1", "n", {})
    wandb_logger.log_metrics({"train/loss": 0.5}, step=1)
    wandb_logger.finalize("success")
    wandb_logger.experiment.finish()
    time.sleep(1.1)  # W&B names offline folders by the second; stages run seconds apart
    log_to_existing_run(
        logger_config(mode="offline"), tmp_path, "shared1", {"eval/fid": 3.0}, job_type="evaluate"
    )
    runs = sorted(Path(tmp_path, "wandb").glob("offline-run-*-shared1/run-shared1.wandb"))
    assert len(runs) == 2, runs


def test_disabled_mode_gives_no_logger(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert make_wandb_logger(logger_config(mode="disabled"), tmp_path, "x", "n", {}) is None


def test_csv_logger_config_skips_wandb_for_evaluation(tmp_path):
    """`logger=csv` has no W&B keys at all: evaluation must not touch W&B (or crash)."""
    log_to_existing_run(
        OmegaConf.create({"backend": "csv"}), tmp_path, "id1", {"eval/fid": 1.0}, "evaluate"
    )
    assert not (tmp_path / "wandb").exists()


def test_train_entry_returns_the_objective_only_when_one_is_configured(compose_config):
    from genlab.tracking.sweep import sweeper_return

    summary = {"run_id": "r", "objective": {"metric": "kid_mean", "value": 12.5}}
    plain = compose_config()
    assert sweeper_return(plain, summary) is summary
    searching = compose_config("train.objective.metric=kid_mean")
    assert sweeper_return(searching, summary) == 12.5
    # A failed job (None) and a NaN score are both a failed trial, never a number to minimize.
    assert sweeper_return(searching, None) is None
    nan = {"objective": {"metric": "kid_mean", "value": float("nan")}}
    assert sweeper_return(searching, nan) is None
    with pytest.raises(Exception, match="train.objective.metric"):
        from genlab.config.validate import validate_config

        validate_config(compose_config("train.objective.metric=accuracy"))


def test_an_objective_needs_the_callback_that_computes_it(compose_config):
    """search=optuna adds the objective callback; a metric without it would return nothing."""
    from genlab.config.validate import validate_config
    from genlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.objective.metric.*search=optuna"):
        validate_config(compose_config("train.objective.metric=kid_mean"))
    searching = compose_config("search=optuna")
    validate_config(searching)
    assert searching.callbacks.objective.metric == "kid_mean"


def test_a_dvc_experiment_name_tags_the_run_and_joins_its_links(monkeypatch):
    from genlab.tracking.identity import run_links
    from genlab.tracking.wandb_setup import run_tags

    config = {"data": {"name": "digits"}, "model": {"name": "vae"}}
    logger_cfg = OmegaConf.create({"tags": []})
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert run_tags(logger_cfg, config) == ["data:digits", "model:vae"]
    assert run_links("abc", "runs/vae")["dvc_experiment"] is None
    monkeypatch.setenv("DVC_EXP_NAME", "lr-sweep-1")
    assert "dvc_exp:lr-sweep-1" in run_tags(logger_cfg, config)
    links = run_links("abc", "runs/vae")
    assert links["dvc_experiment"] == "lr-sweep-1" and links["wandb_run_id"] == "abc"


# --- code version and dataset hash: what a run's provenance says made it --------------------


@pytest.fixture
def committed_project(tmp_path):
    """A git repo with one commit holding code, conf and DVC's lock file, as a clone has."""
    from ..support.dvc_project import git_commit, run

    files = {
        "src/genlab/model.py": "LR = 0.1\n",
        "conf/x.yaml": "lr: 0.1\n",
        "params.yaml": "seed: 0\n",
        "dvc.lock": "schema: '2.0'\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    run(["git", "init", "-q"], tmp_path)
    git_commit(tmp_path, "init")
    sha = run(["git", "rev-parse", "--short=12", "HEAD"], tmp_path).stdout.strip()
    return tmp_path, sha


def test_dvc_rewriting_its_lock_file_and_outputs_keep_the_commit_clean(committed_project):
    """What `dvc repro` does to a clean clone: dvc.lock rewritten, .dvc/ and outputs written."""
    from genlab.tracking.identity import code_state

    root, sha = committed_project
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (root / ".dvc/tmp").mkdir(parents=True)
    (root / ".dvc/tmp/lock").write_text("x")
    (root / "metrics").mkdir()
    (root / "metrics/dcgan.json").write_text("{}")
    state = code_state(root)
    assert state.version == sha and state.changes == ()


def test_an_edit_to_conf_or_new_source_makes_it_dirty_and_names_the_files(committed_project):
    from genlab.tracking.identity import code_state, code_version

    root, sha = committed_project
    (root / "conf/x.yaml").write_text("lr: 0.2\n")
    (root / "dvc.lock").write_text("changed\n")  # still not named: DVC's own file
    assert code_state(root).changes == ("conf/x.yaml",)
    (root / "src/genlab/extra.py").write_text("")  # new, not ignored: the run may import it
    state = code_state(root)
    assert state.version == f"{sha}-dirty" == code_version(root)
    assert state.changes == ("conf/x.yaml", "src/genlab/extra.py")


def test_outside_git_the_version_is_the_package_version(tmp_path, monkeypatch):
    from genlab.tracking.identity import code_state

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    state = code_state(tmp_path)
    assert state.version.startswith("genlab-") and state.changes == ()


def test_the_dataset_hash_names_the_arrays_and_meta_not_when_they_were_written(
    tmp_path, digits_dir
):
    from genlab.data.sources.digits import DigitsSource
    from genlab.data.store import dataset_digest, read_meta, read_split, write_dataset
    from genlab.errors import DatasetError

    original = dataset_digest(digits_dir)
    assert len(original) == 64
    splits = {name: read_split(digits_dir, name) for name in ("train", "test")}
    meta = DigitsSource(image_size=32, test_fraction=0.2, seed=0).meta()
    write_dataset(tmp_path / "again", splits, meta)  # fetched again later: same bytes
    assert read_meta(tmp_path / "again") == read_meta(digits_dir)
    assert dataset_digest(tmp_path / "again") == original
    splits["train"].labels[0] = (splits["train"].labels[0] + 1) % 10  # one label changed
    write_dataset(tmp_path / "relabelled", splits, meta)
    assert dataset_digest(tmp_path / "relabelled") != original
    (tmp_path / "again/meta.json").unlink()
    with pytest.raises(DatasetError, match="meta.json"):
        dataset_digest(tmp_path / "again")


def test_a_training_run_records_the_code_changes_and_dataset_hash(committed_project, digits_dir):
    """The run record (generator file and train_summary.json) names the edited conf file; the
    provenance every image and export copies holds the dataset hash. The same run's generator
    file holds the sampling network with its standing statistics (recomputed over
    STANDING_BATCHES batches of z ~ N(0, I)), not the training run's running ones."""
    import json

    from genlab.data.store import dataset_digest
    from genlab.models.generator_file import load_generator
    from genlab.models.standing_statistics import STANDING_BATCHES, batch_norms

    from ..support.training import run_tiny_training

    root, sha = committed_project
    (root / "conf/x.yaml").write_text("lr: 0.2\n")
    result = run_tiny_training(root, digits_dir, "train.steps=2", "train.sample_every_n_steps=100")
    assert result.returncode == 0, result.stderr[-3000:]
    generator, record = load_generator(root / "run/generator.safetensors")
    norms = batch_norms(generator)
    assert record["train"]["model"] == "dcgan" and norms, "a DCGAN generator has BatchNorm"
    assert [int(n.num_batches_tracked) for n in norms] == [STANDING_BATCHES] * len(norms)
    summary = json.loads((root / "run/train_summary.json").read_text())
    assert record["code_version"] == f"{sha}-dirty"
    assert summary["code_changes"] == record["train"]["code_changes"] == ["conf/x.yaml"]
    assert record["dataset_hash"] == dataset_digest(digits_dir)
