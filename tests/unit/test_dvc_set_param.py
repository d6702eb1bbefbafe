"""`dvc exp run -S <conf file>:<key>=<value>` on every conf/ file DVC tracks as params.

DVC rewrites the file through its own `apply_overrides`, which resolves the file on its own: one
`${...}` pointing into another file makes the whole experiment fail. This calls DVC's function on
a copy of conf/ and composes the result with Hydra, as the next stage would.
"""

from __future__ import annotations

import shutil

import pytest
from dvc.utils.hydra import apply_overrides
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from genlab.config.validate import validate_config

from ..conftest import PROJECT_ROOT, labelled_data_dir

CONF = PROJECT_ROOT / "conf"
DATA = sorted(path.stem for path in (CONF / "data").glob("*.yaml"))
MODELS = sorted(path.stem for path in (CONF / "model").glob("*.yaml"))


def _composed(conf_dir, *overrides):
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_every_tracked_conf_file_is_covered():
    assert {"digits", "mnist", "fashion_mnist", "cifar10", "folder"} <= set(DATA)
    assert {"dcgan", "vae", "stylegan"} <= set(MODELS)


def _cases():
    yield "config.yaml", "train.steps", 7, []
    for name in DATA:
        choice = [f"data={name}"] + (["data.source.path=images"] if name == "folder" else [])
        yield f"data/{name}.yaml", "data.batch_size", 32, choice
    for name in MODELS:
        yield f"model/{name}.yaml", "model.optim.lr", 0.0005, [f"model={name}"]


@pytest.mark.parametrize("relative,key,value,choice", list(_cases()))
def test_set_param_changes_exactly_that_value(tmp_path, relative, key, value, choice):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    if relative.startswith("model/"):  # a conditional model reads its classes from the data
        choice = [*choice, f"data.dir={labelled_data_dir()}"]
    expected = _composed(conf, *choice)
    assert OmegaConf.select(expected, key) != value
    OmegaConf.update(expected, key, value)

    # What `dvc exp run -S conf/<relative>:<key in that file>=<value>` does to the file.
    key_in_file = key if relative == "config.yaml" else key.split(".", 1)[1]
    apply_overrides(conf / relative, [f"{key_in_file}={value}"])

    rewritten = _composed(conf, *choice)
    validate_config(rewritten)
    # Every derived value (folders, the data's shape handed to sources and networks) resolves
    # as before; only the set value differs.
    assert OmegaConf.to_container(rewritten, resolve=True) == OmegaConf.to_container(
        expected, resolve=True
    )
