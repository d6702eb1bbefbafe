"""Decoder likelihoods p(x | z) for the VAE, each paired with the decoder output it scores.

Images arrive in [-1, 1] (uint8 / 127.5 - 1). Every ``nll`` returns one value per image, summed
over pixels, in nats, so ELBOs compare across likelihoods with the same data. Each scores the
decoder output in fp32: under bf16 autocast it arrives in bf16, and a sum over every pixel in
bf16 would be off in the third digit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BINS = 256  # uint8 pixel levels


class BernoulliLikelihood(nn.Module):
    """Binary cross-entropy on pixel intensities in [0, 1]: the usual choice for gray digits."""

    decoder_output = "sigmoid"

    def nll(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        targets = (images + 1) / 2
        per_pixel = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")
        return per_pixel.flatten(1).sum(1)


class GaussianLikelihood(nn.Module):
    """N(x; tanh(raw), sigma^2), sigma fixed or learned (one scalar, as a log)."""

    decoder_output = "tanh"

    def __init__(self, sigma: float = 0.1, learn_sigma: bool = False):
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"Gaussian likelihood sigma must be > 0, got {sigma}")
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)), requires_grad=learn_sigma)

    def nll(self, raw: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tanh(raw.float())
        z = (images - mean) * torch.exp(-self.log_sigma)
        per_pixel = 0.5 * z.square() + self.log_sigma + 0.5 * math.log(2 * math.pi)
        return per_pixel.flatten(1).sum(1)


class DiscretizedLogisticLikelihood(nn.Module):
    """A logistic per pixel, integrated over its 1/255-wide bin (PixelCNN++, Salimans et al.).

    A proper probability of the 8-bit image, so the ELBO is a bits-per-dim figure; the scale
    is learned per channel.
    """

    decoder_output = "tanh"

    def __init__(self, channels: int = 3, initial_log_scale: float = -3.0):
        super().__init__()
        self.log_scale = nn.Parameter(torch.full((1, channels, 1, 1), float(initial_log_scale)))

    def nll(self, raw: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tanh(raw.float())
        log_scale = self.log_scale.clamp(min=-7.0)
        inv_scale = torch.exp(-log_scale)
        centered = images - mean
        half_bin = 1.0 / (BINS - 1)
        plus = inv_scale * (centered + half_bin)
        minus = inv_scale * (centered - half_bin)
        log_cdf_plus = plus - F.softplus(plus)  # the lowest bin takes all mass below it
        log_one_minus_cdf_minus = -F.softplus(minus)  # the highest bin takes all above it
        cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
        middle = inv_scale * centered
        log_pdf_middle = middle - log_scale - 2 * F.softplus(middle) + math.log(2 * half_bin)
        log_prob_inner = torch.where(
            cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_middle
        )
        log_prob = torch.where(
            images < -0.999,
            log_cdf_plus,
            torch.where(images > 0.999, log_one_minus_cdf_minus, log_prob_inner),
        )
        return -log_prob.flatten(1).sum(1)
