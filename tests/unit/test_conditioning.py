"""Class conditioning (model.conditioning=class) in every family: how labels reach each network,
what the networks refuse, StyleGAN's per-class w centres, standing statistics with labels, the
class count composed from the dataset, and that a briefly trained conditional model draws the
class it is asked for."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from genlab.data.datamodule import ImageDataModule, to_uint8
from genlab.data.store import Split, read_meta, write_dataset
from genlab.errors import DatasetError
from genlab.models.standing_statistics import (
    STANDING_BATCH_SIZE,
    STANDING_BATCHES,
    STANDING_SEED,
    balanced_labels,
    with_standing_statistics,
)
from genlab.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from genlab.networks.stylegan import StyleGANDiscriminator, StyleGANGenerator
from genlab.networks.vae import ConvDecoder, ConvEncoder

from ..conftest import compose_config_dir, fit_for_steps, tiny_model_overrides

CLASSES = 5
LATENT = 16


def _dcgan_g(num_classes: int):
    net = DCGANGenerator(latent_dim=LATENT, base_channels=8, num_classes=num_classes)
    return net, lambda batch: torch.randn(batch, LATENT), (1, 32, 32)


def _dcgan_d(num_classes: int):
    net = DCGANDiscriminator(base_channels=8, num_classes=num_classes)
    return net, lambda batch: torch.rand(batch, 1, 32, 32) * 2 - 1, ()


def _encoder(num_classes: int):
    net = ConvEncoder(latent_dim=LATENT, base_channels=8, num_classes=num_classes)
    return net, lambda batch: torch.rand(batch, 1, 32, 32) * 2 - 1, (LATENT,)


def _decoder(num_classes: int):
    net = ConvDecoder(latent_dim=LATENT, base_channels=8, num_classes=num_classes)
    return net, lambda batch: torch.randn(batch, LATENT), (1, 32, 32)


def _stylegan_g(num_classes: int):
    net = StyleGANGenerator(
        latent_dim=LATENT, w_dim=32, base_channels=4, max_channels=16, num_classes=num_classes
    )
    return net, lambda batch: torch.randn(batch, LATENT), (1, 32, 32)


def _stylegan_d(num_classes: int):
    net = StyleGANDiscriminator(base_channels=4, max_channels=16, num_classes=num_classes)
    return net, lambda batch: torch.rand(batch, 1, 32, 32) * 2 - 1, ()


FAMILIES = {
    "dcgan_generator": _dcgan_g,
    "dcgan_discriminator": _dcgan_d,
    "vae_encoder": _encoder,
    "vae_decoder": _decoder,
    "stylegan_generator": _stylegan_g,
    "stylegan_discriminator": _stylegan_d,
}


def build(family: str, num_classes: int = CLASSES):
    """(network in eval mode, input maker, output shape without the batch), seeded."""
    torch.manual_seed(0)
    net, inputs, shape = FAMILIES[family](num_classes)
    if family.endswith("discriminator") or family == "dcgan_generator":
        # a fresh projection / cBN starts near label-blind (embeddings of std 0.02, zero shift):
        # spread them so that a label's effect is far above float noise
        for module in net.modules():
            if module.__class__.__name__ == "ClassEmbedding":
                torch.nn.init.normal_(module.weight, 1.0, 0.5)
    return net.eval(), inputs, shape


def output(net, x, labels=None):
    out = net(x) if labels is None else net(x, labels)
    return out[0] if isinstance(out, tuple) else out  # the encoder: (mean, log_variance)


@pytest.mark.parametrize("family", FAMILIES)
def test_shapes_and_index_labels_equal_one_hot_labels(family):
    net, inputs, shape = build(family)
    x = inputs(6)
    labels = torch.tensor([0, 1, 2, 3, 4, 2])
    with torch.no_grad():
        by_index = output(net, x, labels)
        by_one_hot = output(net, x, F.one_hot(labels, CLASSES).float())
    assert by_index.shape == (6, *shape)
    assert torch.isfinite(by_index).all()
    torch.testing.assert_close(by_index, by_one_hot, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_different_label_gives_a_different_output_for_the_same_input(family):
    net, inputs, _ = build(family)
    x = inputs(CLASSES)
    labels = torch.arange(CLASSES)
    with torch.no_grad():
        first = output(net, x, labels)
        shifted = output(net, x, (labels + 1) % CLASSES)
        again = output(net, x, labels)
    torch.testing.assert_close(first, again)  # eval mode: the label is the only change
    per_sample = (first - shifted).reshape(CLASSES, -1).abs().amax(dim=1)
    assert (per_sample > 1e-4).all(), per_sample


@pytest.mark.parametrize("family", ["dcgan_discriminator", "stylegan_discriminator"])
def test_the_projection_discriminator_scores_one_image_differently_per_class(family):
    net, inputs, _ = build(family)
    image = inputs(1).expand(CLASSES, -1, -1, -1)
    with torch.no_grad():
        scores = net(image, torch.arange(CLASSES))
    assert scores.shape == (CLASSES,)
    assert len(set(scores.tolist())) == CLASSES, scores  # every class its own score


@pytest.mark.parametrize("family", FAMILIES)
def test_unconditional_refuses_labels_and_conditional_refuses_none(family):
    unconditional, inputs, _ = build(family, num_classes=0)
    conditional, _, _ = build(family)
    x = inputs(2)
    with pytest.raises(ValueError, match="unconditional"):
        output(unconditional, x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class-conditional: pass labels"):
        output(conditional, x)
    with pytest.raises(ValueError, match=f"\\(batch, {CLASSES}\\)"):
        output(conditional, x, torch.ones(2, CLASSES + 1))  # weights for the wrong class count


def test_blended_class_weights_interpolate_the_decoder_input():
    """A 50/50 blend of two classes is half way between them where the label enters."""
    net, inputs, _ = build("vae_decoder")
    z = inputs(1)
    a, b = torch.tensor([1]), torch.tensor([3])
    blend = 0.5 * F.one_hot(a, CLASSES).float() + 0.5 * F.one_hot(b, CLASSES).float()
    with torch.no_grad():
        seeds = [
            net.from_latent[0](torch.cat([z, w], 1))
            for w in (F.one_hot(a, CLASSES).float(), F.one_hot(b, CLASSES).float(), blend)
        ]
    torch.testing.assert_close(seeds[2], (seeds[0] + seeds[1]) / 2)
    with torch.no_grad():
        assert net(z, blend).shape == (1, 1, 32, 32)


def test_stylegan_moves_only_the_w_centres_of_classes_in_the_batch():
    net, inputs, _ = build("stylegan_generator")
    net.train()
    before = net.w_avg_class.clone()
    with torch.no_grad():
        net(inputs(8), torch.tensor([1, 3, 1, 3, 1, 3, 3, 1]))
    moved = (net.w_avg_class - before).abs().amax(dim=1) > 0
    assert moved.tolist() == [False, True, False, True, False]
    assert (net.w_avg != 0).any()  # the global centre moves with every batch
    with torch.no_grad():  # blended weights move every class they touch, no other
        net(inputs(2), torch.tensor([[0.0, 0.0, 0.5, 0.0, 0.5]] * 2))
    moved = (net.w_avg_class - before).abs().amax(dim=1) > 0
    assert moved.tolist() == [False, True, True, True, True]


def test_stylegan_truncation_with_labels_pulls_w_to_its_class_centre():
    net, inputs, _ = build("stylegan_generator")
    with torch.no_grad():
        net.w_avg_class.copy_(torch.randn(CLASSES, net.w_dim) * 3)
        net.w_avg.copy_(torch.randn(net.w_dim))
    z, labels = inputs(CLASSES), torch.arange(CLASSES)
    with torch.no_grad():
        w = net.mapping(z, labels)
        centre = net.w_centre(labels)
        torch.testing.assert_close(centre, net.w_avg_class)
        half = net.truncate(w, 0.5, labels)
        torch.testing.assert_close(half - centre, 0.5 * (w - centre))
        torch.testing.assert_close(net.truncate(w, 0.0, labels), centre)
        torch.testing.assert_close(net.truncate(w, 0.0), net.w_avg.expand_as(w))
        # psi = 0 in eval mode: every z of a class draws its class's one image, and classes differ
        net.eval()
        net.truncation_psi = 0.0
        same_class = net(inputs(3), torch.tensor([2, 2, 2]))
        every_class = net(inputs(CLASSES), labels)
    torch.testing.assert_close(same_class[0], same_class[1])
    torch.testing.assert_close(same_class[0], same_class[2])
    assert (every_class[0] - every_class[1]).abs().max() > 1e-4


def test_stylegan_mapping_repeats_one_label_or_one_z_to_the_batch():
    net, inputs, _ = build("stylegan_generator")
    z = inputs(4)
    with torch.no_grad():
        one_label = net.mapping(z, torch.tensor([2]))
        repeated = net.mapping(z, torch.tensor([2, 2, 2, 2]))
        one_z = net.mapping(z[:1], torch.arange(4))
    torch.testing.assert_close(one_label, repeated)
    assert one_z.shape == (4, net.w_dim)
    with torch.no_grad():
        images = net.mix_styles(z[:2], z[2:], crossover=2, labels=torch.tensor([0, 4]))
    assert images.shape == (2, 1, 32, 32)


def test_standing_statistics_of_a_conditional_dcgan_generator_are_taken_with_balanced_labels():
    """The running statistics equal the exact mean / variance of each BatchNorm's input over the
    standing latents with labels 0, 1, .., C-1, 0, ..: measured here by hooks on a train-mode
    copy, independently of the cumulative-average mechanism."""
    net, _, _ = build("dcgan_generator")
    standing = with_standing_statistics(net, LATENT, CLASSES)
    assert not standing.training and standing is not net
    norms = [m for m in standing.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) >= 2
    seen: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(norms))}
    probe = build("dcgan_generator")[0].train()
    probe_norms = [m for m in probe.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for i, norm in enumerate(probe_norms):
        norm.register_forward_pre_hook(lambda _, args, i=i: seen[i].append(args[0].detach()))
    latents = torch.Generator().manual_seed(STANDING_SEED)
    labels = balanced_labels(STANDING_BATCH_SIZE, CLASSES)
    assert labels.tolist()[: CLASSES + 1] == [*range(CLASSES), 0]
    with torch.no_grad():
        for _ in range(STANDING_BATCHES):
            probe(torch.randn(STANDING_BATCH_SIZE, LATENT, generator=latents), labels)
    for i, norm in enumerate(norms):
        inputs = torch.cat(seen[i]).transpose(0, 1).flatten(1).double()
        torch.testing.assert_close(norm.running_mean.double(), inputs.mean(1), rtol=1e-4, atol=1e-5)
    # the last layer's input depends on the labels the earlier cBN layers were given
    with torch.no_grad():
        other = with_standing_statistics(_relabelled(net), LATENT, CLASSES)
    last = [m for m in other.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    assert not torch.allclose(last.running_mean, norms[-1].running_mean)
    with pytest.raises(ValueError, match="class-conditional"):
        with_standing_statistics(net, LATENT, 0)  # a conditional generator needs its labels


def _relabelled(net):
    """A copy of ``net`` whose classes' cBN scales are permuted: same network, other labels."""
    import copy

    other = copy.deepcopy(net)
    for module in other.modules():
        if module.__class__.__name__ == "ConditionalBatchNorm2d":
            with torch.no_grad():
                module.scale.weight.copy_(module.scale.weight.roll(1, dims=0) * 1.5)
    return other


# --- the class count from the data ---------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "keys"),
    [
        ("dcgan", ("generator", "discriminator")),
        ("stylegan", ("generator", "discriminator")),
        ("vae", ("encoder", "decoder")),
    ],
)
def test_conditioning_class_takes_the_class_count_from_the_datasets_meta(digits_dir, model, keys):
    classes = len(read_meta(digits_dir)["classes"])
    assert classes == 10
    cfg = compose_config_dir(
        f"model={model}",
        "model.conditioning=class",
        f"data.dir={digits_dir}",
        *tiny_model_overrides(model),
    )
    assert [cfg.model[key].num_classes for key in keys] == [classes, classes]
    module = instantiate(cfg.model)
    assert module.num_classes == classes and module.conditioning == "class"
    labels = module.sample_labels(12)
    assert labels.tolist() == [*range(10), 0, 1]
    assert module.generate(torch.randn(12, module.latent_dim)).shape == (12, 1, 32, 32)
    plain = compose_config_dir(f"model={model}", f"data.dir={digits_dir}")
    assert [plain.model[key].num_classes for key in keys] == [0, 0]


def test_vae_class_composes_conditional_without_a_data_override():
    cfg = compose_config_dir("model=vae_class")  # tests/conftest.py supplies labelled data
    assert cfg.model.conditioning == "class" and cfg.model.decoder.num_classes == 10


def test_write_dataset_counts_the_listed_classes_and_checks_the_labels(tmp_path):
    images = np.zeros((4, 1, 8, 8), np.uint8)
    split = Split(images, np.array([0, 1, 1, 0]))
    write_dataset(tmp_path / "a", {"train": split, "test": split}, {"classes": ["x", "y", "z"]})
    assert read_meta(tmp_path / "a")["num_classes"] == 3  # "z" has no image: still a class
    assert read_meta(tmp_path / "a")["classes"] == ["x", "y", "z"]
    module = ImageDataModule(tmp_path / "a", batch_size=2)
    module.setup()
    batch_images, batch_labels = next(iter(module.train_dataloader()))
    assert batch_images.shape == (2, 1, 8, 8) and batch_labels.dtype == torch.int64
    unlabelled = Split(images, np.array([-1, -1, -1, -1]))
    write_dataset(tmp_path / "u", {"train": unlabelled, "test": unlabelled}, {"classes": []})
    assert read_meta(tmp_path / "u")["num_classes"] == 0
    assert not read_meta(tmp_path / "u").get("classes")


@pytest.mark.parametrize(
    ("classes", "labels", "match"),
    [
        (["a", "b"], [0, 2], "label 2, but the dataset names 2 classes"),
        (["a", "b"], [0, -2], "label -2"),
        (["a", "b"], [0, -1], "label -1"),  # a labelled dataset has no unlabelled image
    ],
)
def test_write_dataset_refuses_labels_outside_the_classes(tmp_path, classes, labels, match):
    split = Split(np.zeros((2, 1, 8, 8), np.uint8), np.array(labels))
    with pytest.raises(DatasetError, match=match) as caught:
        write_dataset(
            tmp_path / "d", {"train": split, "test": split}, {"name": "shapes", "classes": classes}
        )
    assert "'shapes'" in str(caught.value)
    assert not (tmp_path / "d").exists()  # nothing half-written


def test_a_pulled_dataset_with_a_label_outside_its_classes_is_refused_before_training(tmp_path):
    """data/ someone else wrote (dvc pull) never went through write_dataset's check: the
    datamodule checks the labels against meta.json's classes before the first step."""
    import json

    split = Split(np.zeros((4, 1, 8, 8), np.uint8), np.array([0, 1, 0, 1]))
    write_dataset(tmp_path / "d", {"train": split, "test": split}, {"classes": ["a", "b"]})
    np.savez(tmp_path / "d/train.npz", images=split.images, labels=np.array([0, 1, -1, 1]))
    module = ImageDataModule(tmp_path / "d", batch_size=2)
    with pytest.raises(DatasetError, match="label -1, but the dataset names 2 classes"):
        module.setup()
    meta = json.loads((tmp_path / "d/meta.json").read_text())
    (tmp_path / "d/meta.json").write_text(json.dumps({**meta, "classes": []}))
    ImageDataModule(tmp_path / "d", batch_size=2).setup()  # unlabelled: -1 is fine


@pytest.mark.parametrize(
    "classes",
    [["a", "a"], ["a", "b\x1b[2J"], ["", "b"], ["x" * 65, "b"], [1, 2]],
    ids=["duplicate", "escape", "empty", "long", "numbers"],
)
def test_unusual_class_names_fetch_but_conditioning_on_them_is_refused(tmp_path, classes):
    """A folder named oddly still fetches (an unconditional model never carries the names);
    conditioning on it is refused naming the setting, before anything is trained."""
    from genlab.config.hydra_runtime import dataset_num_classes
    from genlab.errors import ConfigError

    split = Split(np.zeros((2, 1, 8, 8), np.uint8), np.array([0, 1]))
    write_dataset(tmp_path / "d", {"train": split, "test": split}, {"classes": classes})
    assert read_meta(tmp_path / "d")["num_classes"] == 2
    assert dataset_num_classes("none", str(tmp_path / "d")) == 0
    with pytest.raises(ConfigError, match="model.conditioning") as caught:
        dataset_num_classes("class", str(tmp_path / "d"))
    assert "\x1b" not in str(caught.value)


# --- a conditional model draws the class it is asked for --------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_briefly_trained_cvae_draws_the_asked_class(digits_dir, tmp_path):
    """vae_class (narrowed to base_channels=16), 200 steps of batch 32 on the digits with
    beta=4 (a tight posterior leaves the class to the label) and lr 3e-3: a digits classifier
    recognises the asked class in its samples. Measured: mean per-class accuracy 0.60 (chance:
    0.10; per class 0.17..0.98) in 65 s on 2 shared CPU cores (120 s when heavily loaded). With
    beta=1 and 300 steps it was 0.23: the decoder had not yet learned to use the label."""
    from genlab.evaluation.classifier_training import load_classifier
    from genlab.networks.classifier import to_classifier_input

    from ..support.training import train_quick_classifier

    started = time.monotonic()
    cfg = compose_config_dir(
        "model=vae_class",
        f"data.dir={digits_dir}",
        "model.encoder.base_channels=16",
        "model.decoder.base_channels=16",
        "model.kl_warmup_steps=50",
        "model.beta=4.0",
        "model.optim.lr=3e-3",
    )
    torch.manual_seed(0)
    module = instantiate(cfg.model)
    fit_for_steps(module, digits_dir, steps=200, batch_size=32)
    classifier = load_classifier(train_quick_classifier(tmp_path, digits_dir)).eval()
    per_class = 40
    labels = torch.arange(10).repeat_interleave(per_class)
    z = torch.randn(len(labels), module.latent_dim, generator=torch.Generator().manual_seed(1))
    images = to_uint8(module.generate(z, labels))
    with torch.no_grad():
        logits = classifier(
            to_classifier_input(images, classifier.in_channels, classifier.image_size)
        )
    hits = (logits.argmax(1) == labels).float().view(10, per_class).mean(1)
    print(
        f"per-class accuracy {hits.tolist()} mean {hits.mean():.3f} "
        f"in {time.monotonic() - started:.1f} s"
    )
    assert hits.mean() > 0.4, hits  # four times chance
    assert (hits > 0.2).sum() >= 7, hits  # not one or two classes carrying the mean


@pytest.mark.parametrize(
    "family", ["dcgan_generator", "dcgan_discriminator", "vae_decoder", "stylegan_generator"]
)
def test_an_out_of_range_class_index_is_a_value_error_naming_the_valid_range(family):
    net, inputs, _ = build(family)
    x = inputs(2)
    for bad in ([0, CLASSES], [-1, 0], [0, 99]):
        with pytest.raises(ValueError, match=f"0\\.\\.{CLASSES - 1}"):
            output(net, x, torch.tensor(bad))
