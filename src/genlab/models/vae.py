"""VAE training logic (Kingma & Welling, 2014) with automatic optimization.

The negative ELBO is the decoder likelihood's NLL plus beta * KL(q(z|x) || N(0, I)); beta ramps
up linearly over ``kl_warmup_steps`` so the decoder learns to use z before the KL term bites.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from genlab.checks import CLASS_CONDITIONAL
from genlab.models.base import GenerativeModule
from genlab.networks.vae import ConvDecoder, ConvEncoder

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def gaussian_kl(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, I)) per sample, summed over latent dimensions.

    In fp32 even when the encoder ran under bf16 autocast: a bf16 sum rounds to ~3 digits."""
    mean, log_variance = mean.float(), log_variance.float()
    return 0.5 * (mean.square() + log_variance.exp() - 1 - log_variance).sum(1)


class VAEModule(GenerativeModule):
    sampling_network_key = "decoder"

    def __init__(
        self,
        encoder: ConvEncoder,
        decoder: ConvDecoder,
        likelihood: nn.Module,
        optim: OptimizerFactory,
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        name: str = "vae",
        conditioning: str = "none",
    ):
        super().__init__(name=name, latent_dim=decoder.latent_dim, conditioning=conditioning)
        self.check_conditioning(encoder=encoder, decoder=decoder)
        if likelihood.decoder_output != decoder.output:
            raise ValueError(
                f"{type(likelihood).__name__} scores a decoder with output="
                f"{likelihood.decoder_output!r}, but model.decoder.output is {decoder.output!r}: "
                f"set model.decoder.output={likelihood.decoder_output}"
            )
        if beta < 0:
            raise ValueError(f"KL weight beta must be >= 0, got {beta}")
        if kl_warmup_steps < 0:
            raise ValueError(f"KL warm-up steps must be >= 0, got {kl_warmup_steps}")
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.optim_factory = optim
        self.beta = beta
        self.kl_warmup_steps = kl_warmup_steps

    def configure_optimizers(self):
        return self.optim_factory(self.parameters())

    def beta_at(self, step: int) -> float:
        if self.kl_warmup_steps == 0:
            return self.beta
        return self.beta * min(1.0, (step + 1) / self.kl_warmup_steps)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, labels = batch
        # a CVAE: q(z|x,y), p(x|z,y)
        labels = labels if self.conditioning == CLASS_CONDITIONAL else None
        mean, log_variance = self.encoder(images, labels)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)  # reparameterization
        nll = self.likelihood.nll(self.decoder.decode(z, labels), images)
        kl = gaussian_kl(mean, log_variance)
        beta = self.beta_at(self.training_steps)
        loss = (nll + beta * kl).mean()
        self.check_finite(loss=loss)
        dims = images[0].numel() * math.log(2)
        self.log_dict(
            {
                "train/loss": loss.detach(),
                "train/nll": nll.mean().detach(),
                "train/kl": kl.mean().detach(),
                "train/beta": beta,
                "train/neg_elbo_bits_per_dim": ((nll + kl).mean() / dims).detach(),
            },
            prog_bar=True,
        )
        return loss

    def sampling_network(self) -> nn.Module:
        """The decoder: samples come from the prior, z ~ N(0, I)."""
        return self.decoder

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded posterior means, in eval mode: how much of each image the latent keeps
        (a CVAE needs the images' labels)."""
        was_training = self.training
        self.eval()
        try:
            labels = None if labels is None else labels.to(self.device)
            mean, _ = self.encoder(images.to(self.device), labels)
            return self.decoder(mean, labels)
        finally:
            self.train(was_training)
