"""Weights as data: a generator file, an extractor weights file or a cached reference statistic
from someone else can hold numbers, never code (issue 16, rows 1, 5 and 14).

Every hostile file here is built for real: a pickle whose unpickling writes a marker file, a
safetensors file whose metadata names a code-running target. "Nothing ran" means the marker
is absent afterwards.
"""

import genlab  # noqa: F401, I001  (must precede torchvision / torch_fidelity: installs the CPU shim)

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from genlab.errors import ClassifierError, StageInputError
from genlab.evaluation.fidelity import compute_fidelity
from genlab.evaluation.settings import sample_images
from genlab.layout import stage_instance
from genlab.models.generator_file import build_untrained, load_generator, save_generator
from genlab.networks.dcgan import DCGANGenerator

from ..integration.test_stage_errors import run_stage
from ..unit.test_generator_file import CONFIG

# the stage a refused generator file of the dcgan's seed-0 run names, as a regex: not another
# seed's (train@dcgan-01) nor a bare train@dcgan
TRAIN_DCGAN_0 = re.escape(stage_instance("train", "dcgan", 0)) + r"\b"

RECORD = {"model": "dcgan", "run_id": "r1", "training_fingerprint": "f", "code_version": "v"}


class RunsCode:
    """Unpickling this object runs ``exec``: it writes ``marker``. What a hostile file holds."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def hostile_pickle(path: Path, marker: Path, payload: dict | None = None) -> Path:
    """A torch.save file (the old generator.pt format) that runs code when unpickled."""
    torch.save({**(payload or {}), "exploit": RunsCode(marker)}, path)
    return path


def _generator() -> DCGANGenerator:
    torch.manual_seed(0)
    return DCGANGenerator(latent_dim=8, base_channels=4, channels=1, image_size=16).eval()


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "runs/dcgan/generator.safetensors"
    save_generator(path, _generator(), CONFIG, RECORD)
    return path


def _rewrite(path: Path, tensors=None, **genlab_metadata) -> None:
    """Rewrite a valid generator file with changed tensors and/or metadata entries."""
    from safetensors import safe_open

    with safe_open(path, "pt") as handle:
        metadata = json.loads(handle.metadata()["genlab"])
    metadata.update(genlab_metadata)
    save_file(tensors or load_file(path), path, metadata={"genlab": json.dumps(metadata)})


# --- row 1: the generator file ----------------------------------------------------------------


def test_the_hostile_pickle_is_real(tmp_path):
    """Control: the crafted file does run code when unpickled the way genlab used to."""
    marker = tmp_path / "marker"
    path = hostile_pickle(tmp_path / "generator.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("name", ["generator.safetensors", "generator.pt"])
def test_row1_a_pickled_generator_file_is_refused_unopened(tmp_path, name):
    """Row 1: a torch.save pickle (the old generator.pt, or a file renamed .safetensors) ran
    its code in evaluate/export; now it is refused before anything is unpickled."""
    marker = tmp_path / "marker"
    run_dir = tmp_path / "runs/dcgan"
    run_dir.mkdir(parents=True)
    payload = {"format_version": 1, "generator_config": CONFIG, "record": RECORD}
    hostile_pickle(run_dir / name, marker, payload)
    with pytest.raises(StageInputError, match=rf"pickle.*dvc repro {TRAIN_DCGAN_0}") as error:
        load_generator(run_dir / "generator.safetensors", model="dcgan", seed=0)
    assert str(run_dir / name) in str(error.value)
    assert not marker.exists()


HOSTILE_METADATA = {
    "torch.load": {"network": "torch.load", "arguments": {"f": "evil.pt"}},
    "os.system": {"network": "os.system", "arguments": {"command": "touch marker"}},
    "network as a nested config": {
        "network": {"_target_": "os.system", "command": "touch marker"},
        "arguments": {},
    },
    "arguments not a mapping": {"network": CONFIG["_target_"], "arguments": [1, 2]},
    "not allow-listed genlab class": {
        "network": "genlab.networks.dcgan.DCGANDiscriminator",
        "arguments": {"base_channels": 4, "channels": 1, "image_size": 16},
    },
    "nested _target_": {
        "network": CONFIG["_target_"],
        "arguments": {
            **{k: v for k, v in CONFIG.items() if k != "_target_"},
            "base_channels": {"_target_": "os.system", "command": "x"},
        },
    },
    "unknown argument": {
        "network": CONFIG["_target_"],
        "arguments": {**{k: v for k, v in CONFIG.items() if k != "_target_"}, "evil": 1},
    },
    "huge size": {
        "network": CONFIG["_target_"],
        "arguments": {"latent_dim": 8, "base_channels": 10**9, "channels": 1, "image_size": 16},
    },
    "bool for an int": {
        "network": CONFIG["_target_"],
        "arguments": {"latent_dim": True, "base_channels": 4, "channels": 1, "image_size": 16},
    },
}


@pytest.mark.parametrize("case", sorted(HOSTILE_METADATA))
def test_row1_b_metadata_names_only_allow_listed_networks_with_plain_arguments(tmp_path, case):
    """Row 1: the file's metadata chose what to build (it went to Hydra's instantiate); now
    only an allow-listed genlab network with checked scalar arguments is built."""
    path = _saved(tmp_path)
    _rewrite(path, **HOSTILE_METADATA[case])
    with pytest.raises(StageInputError, match=rf"dvc repro {TRAIN_DCGAN_0}") as error:
        load_generator(path, model="dcgan", seed=0)
    assert str(path) in str(error.value)
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize(
    "config",
    [
        {"_target_": "builtins.exec", "_args_": ["open('marker', 'w').write('code ran')"]},
        {"_target_": "torch.load", "f": "evil.pt", "weights_only": False},
        {**CONFIG, "base_channels": {"_target_": "builtins.exec", "_args_": ["1"]}},
    ],
)
def test_row1_b_untrained_baseline_builds_only_allow_listed_networks(tmp_path, monkeypatch, config):
    """Row 1: evaluate's untrained baseline instantiated the stored config as given."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageInputError, match="allow|argument|network"):
        build_untrained(config, seed=0)
    assert not (tmp_path / "marker").exists()


def test_row1_c_tensor_names_and_shapes_must_match_the_network(tmp_path):
    """Row 1: tensors that do not fit the named network are refused, naming the tensor."""
    path = _saved(tmp_path)
    tensors = load_file(path)
    name = sorted(tensors)[0]
    for changed in (
        {**tensors, name: torch.zeros(3, 3)},  # wrong shape
        {k: v for k, v in tensors.items() if k != name},  # missing
        {**tensors, "extra.weight": torch.zeros(1)},  # unexpected
        {**tensors, name: tensors[name].double()},  # wrong dtype
    ):
        _rewrite(path, changed)
        with pytest.raises(StageInputError, match=rf"dvc repro {TRAIN_DCGAN_0}") as error:
            load_generator(path, model="dcgan", seed=0)
        assert "extra.weight" in str(error.value) or name in str(error.value)


def test_row1_c_non_finite_weights_are_refused(tmp_path):
    """Row 1: NaN/inf weights load silently and score as black images; now refused."""
    path = _saved(tmp_path)
    tensors = load_file(path)
    name = next(k for k, v in sorted(tensors.items()) if v.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    _rewrite(path, tensors)
    with pytest.raises(StageInputError, match=rf"non-finite.*{name}.*dvc repro {TRAIN_DCGAN_0}"):
        load_generator(path, model="dcgan", seed=0)


def test_row1_a_hostile_pickle_is_refused_by_a_stage_script(tmp_path):
    """Row 1: the stage script refuses the file with one line, and nothing runs."""
    marker = tmp_path / "marker"
    (tmp_path / "run").mkdir()
    hostile_pickle(tmp_path / "run/generator.safetensors", marker, {"generator_config": CONFIG})
    result = run_stage("export", tmp_path)
    assert result.returncode == 1, result.stderr
    assert "pickle" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists() and not (tmp_path / "export").exists()


# --- row 5: extractor weights and the reference-statistics cache ------------------------------


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, size=(n, 1, 32, 32)).astype(np.uint8)


def test_row5_inception_weights_pickle_is_refused_unopened(tmp_path):
    """Row 5: metrics.weights_path went to torch-fidelity's torch.load(weights_only=False)."""
    marker = tmp_path / "marker"
    weights = hostile_pickle(tmp_path / "inception.pth", marker, {"fc.weight": torch.zeros(1)})
    images = _images(4, 0)
    with pytest.raises(StageInputError, match=r"inception\.pth.*weights_path") as error:
        compute_fidelity(images, images, extractor="inception", weights_path=str(weights))
    assert "code" in str(error.value)
    assert not marker.exists()


SWAP_AFTER_THE_CHECK = textwrap.dedent(
    """
    import genlab  # the CPU shim, before torch_fidelity
    import os, sys
    import numpy as np
    import torch_fidelity.utils
    from genlab.evaluation.fidelity import compute_fidelity

    weights, hostile = sys.argv[1], sys.argv[2]
    swapped = []

    def swap(event, args):
        # another process replacing the file between genlab's check and torch-fidelity's
        # torch.load(weights_only=False): done at the exact moment torch-fidelity opens it
        if event != "open" or swapped or not isinstance(args[0], str) or args[0] != weights:
            return
        frame = sys._getframe(1)
        while frame and "torch_fidelity" not in frame.f_code.co_filename:
            frame = frame.f_back
        if frame:
            swapped.append(True)
            os.replace(hostile, weights)

    class Built(Exception):
        pass

    def stop(*args, **kwargs):  # the extractor is built: scoring images adds only time
        raise Built

    torch_fidelity.utils.get_featuresdict_from_dataset = stop
    sys.addaudithook(swap)
    images = np.random.RandomState(0).randint(0, 256, size=(2, 1, 32, 32)).astype(np.uint8)
    try:
        compute_fidelity(images, images, extractor="inception", weights_path=weights)
    except Built:
        print("swapped" if swapped else "torch-fidelity never opened the checked path")
    """
)


def test_row5_inception_weights_swapped_after_the_check_are_never_unpickled(tmp_path):
    """Row 5: the Inception file was proven weights_only-safe, then torch-fidelity opened the
    same path again with weights_only=False: a file swapped in between (another user's
    process, a sync client) ran code. torch-fidelity now reads a private copy of the bytes
    genlab checked and hashed."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None  # the random init is the state dict we save

    torch.save({}, tmp_path / "empty.pth")
    model = Unloaded(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(tmp_path / "empty.pth")
    )
    state = model.state_dict()
    weights = tmp_path / "inception.pth"
    torch.save(state, weights)
    marker = tmp_path / "marker"
    hostile = tmp_path / "hostile.pth"
    torch.save(_CodeInState(state, marker), hostile)
    result = subprocess.run(
        [sys.executable, "-c", SWAP_AFTER_THE_CHECK, str(weights), str(hostile)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not marker.exists(), "the swapped-in pickle ran"
    assert "torch-fidelity never opened the checked path" in result.stdout, result.stdout


class _CodeInState(dict):
    """A state dict that also runs code when unpickled (``hostile_pickle`` with every tensor)."""

    def __init__(self, state: dict, marker: Path):
        super().__init__(state)
        self.marker = marker

    def __reduce__(self):
        code = f"open({str(self.marker)!r}, 'w').write('ran') and state"
        return eval, (code, {"state": dict(self)})


def test_row5_classifier_weights_pickle_is_refused_unopened(tmp_path):
    """Row 5: the classifier extractor's weights are read with weights_only=True."""
    marker = tmp_path / "marker"
    weights = hostile_pickle(tmp_path / "classifier.pt", marker)
    images = _images(4, 0)
    with pytest.raises(ClassifierError):
        compute_fidelity(images, images, extractor="classifier", weights_path=str(weights))
    assert not marker.exists()


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory) -> str:
    from genlab.evaluation.classifier_training import save_classifier
    from genlab.networks.classifier import DomainClassifier

    torch.manual_seed(0)
    model = DomainClassifier(in_channels=1, num_classes=3, feature_dim=16, image_size=32)
    path = tmp_path_factory.mktemp("classifier") / "classifier.pt"
    save_classifier(model.eval(), path, {"test_accuracy": 0.0})
    return str(path)


def test_row5_hostile_reference_cache_files_are_never_unpickled(tmp_path, tiny_classifier):
    """Row 5: torch-fidelity unpickled its cache (weights_only=False). Hostile pickles at the
    exact paths torch-fidelity 0.4.0 reads, and at genlab's own cache path, run nothing: the
    statistics are recomputed and come out as without a cache."""
    samples, reference = _images(20, 1), _images(24, 2)
    options = dict(extractor="classifier", weights_path=tiny_classifier, batch_size=8)
    uncached = compute_fidelity(samples, reference, **options)
    cache = tmp_path / "cache"
    first = compute_fidelity(samples, reference, cache_dir=str(cache), **options)
    key, extractor = first["reference_cache_key"], first["feature_extractor"]
    marker = tmp_path / "marker"
    torch_fidelity_paths = [
        cache / f"{key}-{extractor}-features-{layer}.pt" for layer in ("features", "logits")
    ] + [cache / f"{key}-{extractor}-stat-fid-features.pt"]
    own = sorted(cache.iterdir())
    assert own, "the reference features were not cached"
    for path in [*torch_fidelity_paths, *own]:
        hostile_pickle(path, marker)
    with pytest.warns(UserWarning, match="ignoring the reference features cache"):
        again = compute_fidelity(samples, reference, cache_dir=str(cache), **options)
    assert not marker.exists()
    for key_ in ("fid", "kid_mean", "isc_mean"):
        assert again[key_] == first[key_] == uncached[key_]
    third = compute_fidelity(samples, reference, cache_dir=str(cache), **options)
    assert third["fid"] == first["fid"]
    assert all(path.read_bytes()[:2] != b"PK" for path in own)  # rewritten as plain tensors


# --- row 14: NaN samples ----------------------------------------------------------------------


def test_row14_nan_generator_output_fails_instead_of_scoring_as_black(tmp_path):
    """Row 14: a generator with NaN weights gave NaN images, converted to black pixels and
    scored; now sampling stops with a message naming the model."""
    generator = _generator()
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(
        StageInputError, match=rf"dcgan.*non-finite.*Re-train it \(`dvc repro {TRAIN_DCGAN_0}`\)"
    ):
        sample_images(generator, 4, seed=0, batch_size=2, model="dcgan", training_seed=0)
    finite = sample_images(_generator(), 4, seed=0, batch_size=2, model="dcgan")
    assert finite.dtype == torch.uint8 and finite.shape == (4, 1, 16, 16)


def test_copying_a_run_keeps_the_file_loadable(tmp_path):
    """A shared (copied) generator file still loads: refusal is about content, not location."""
    path = _saved(tmp_path)
    copy = tmp_path / "elsewhere/generator.safetensors"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    generator, record = load_generator(copy)
    assert record["run_id"] == "r1"
