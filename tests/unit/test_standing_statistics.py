"""Standing statistics: the sampling network normalises with the statistics of its own weights
on z ~ N(0, I), whatever its running statistics said before, without touching training state."""

from __future__ import annotations

import torch
from hydra.utils import instantiate

from genlab.models.standing_statistics import (
    STANDING_BATCHES,
    batch_norms,
    with_standing_statistics,
)
from genlab.networks.dcgan import DCGANGenerator
from genlab.networks.stylegan import StyleGANGenerator
from genlab.networks.vae import ConvDecoder

from ..conftest import tiny_model_overrides


def eval_vs_batch_statistics(network: torch.nn.Module, latent_dim: int) -> float:
    """How far eval-mode outputs are from the same network normalised by the batch itself,
    on a batch large enough that its statistics are the population's."""
    z = torch.randn(2048, latent_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        evaluated = network.eval()(z)
        batch = [m.momentum for m in batch_norms(network)]
        for norm in batch_norms(network):
            norm.momentum = 0.0  # train mode without moving the running statistics
        in_batch = network.train()(z)
        for norm, momentum in zip(batch_norms(network), batch, strict=True):
            norm.momentum = momentum
    network.eval()
    return float((evaluated - in_batch).abs().mean())


def corrupted(network: torch.nn.Module) -> torch.nn.Module:
    """Running statistics of some other network: what an EMA of BatchNorm buffers gives."""
    for norm in batch_norms(network):
        norm.running_mean += 0.5
        norm.running_var *= 4.0
    return network


def test_a_dcgan_generator_samples_with_its_own_statistics():
    torch.manual_seed(0)
    generator = corrupted(DCGANGenerator(latent_dim=16, base_channels=8))
    before = eval_vs_batch_statistics(generator, 16)
    standing = with_standing_statistics(generator, 16)
    assert all(int(n.num_batches_tracked) == STANDING_BATCHES for n in batch_norms(standing))
    after = eval_vs_batch_statistics(standing, 16)
    assert before > 0.05, before
    assert after < before / 10, (before, after)
    assert not standing.training


def test_a_vae_decoder_samples_with_its_own_statistics():
    torch.manual_seed(0)
    decoder = corrupted(ConvDecoder(latent_dim=8, base_channels=8))
    standing = with_standing_statistics(decoder, 8)
    assert eval_vs_batch_statistics(standing, 8) < eval_vs_batch_statistics(decoder, 8) / 10


def test_the_trained_network_and_the_global_rng_are_untouched():
    torch.manual_seed(0)
    generator = corrupted(DCGANGenerator(latent_dim=16, base_channels=8)).train()
    for norm, momentum in zip(batch_norms(generator), (0.01, None, 0.3), strict=False):
        norm.momentum = momentum  # not torch's default 0.1, one a cumulative average
    momenta = [norm.momentum for norm in batch_norms(generator)]
    buffers = {k: v.clone() for k, v in generator.state_dict().items()}
    rng = torch.get_rng_state()
    standing = with_standing_statistics(generator, 16)
    assert standing is not generator
    assert torch.equal(torch.get_rng_state(), rng)  # training's random stream goes on as before
    assert generator.training
    assert [norm.momentum for norm in batch_norms(generator)] == momenta
    assert [norm.momentum for norm in batch_norms(standing)] == momenta, "the copy keeps them"
    for key, value in generator.state_dict().items():
        assert torch.equal(value, buffers[key]), key
    again = with_standing_statistics(generator, 16)  # deterministic: same bytes every time
    for key, value in standing.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_a_network_without_batch_norm_is_used_as_it_is():
    generator = StyleGANGenerator(
        latent_dim=8, w_dim=16, mapping_depth=2, base_channels=4, max_channels=16, image_size=8
    )
    assert with_standing_statistics(generator, 8) is generator


def test_a_gan_module_samples_through_standing_statistics(compose_config):
    cfg = compose_config("model=dcgan", *tiny_model_overrides("dcgan"))
    torch.manual_seed(0)
    module = instantiate(cfg.model)
    corrupted(module.ema_generator.module)
    ema_buffers = {k: v.clone() for k, v in module.ema_generator.module.state_dict().items()}
    sampling = module.sampling_generator()
    assert sampling is not module.sampling_network()
    assert eval_vs_batch_statistics(sampling, module.latent_dim) < 0.05
    for key, value in module.ema_generator.module.state_dict().items():  # the checkpoint's
        assert torch.equal(value, ema_buffers[key]), key
