"""StyleGAN2 (Karras et al., 2020) "lite": a small style-based generator and residual discriminator.

Faithful to the paper where it matters for quality (equalized learning rate, mapping network with
a reduced learning rate, weight demodulation, per-layer noise, skip-connected toRGB outputs,
residual discriminator with minibatch standard deviation, style mixing, truncation trick) but
small and simple enough to train at 32x32 on a couple of CPU cores:

* modulation is done the *non-fused* way (scale activations, shared-weight conv, scale outputs),
  which is mathematically the grouped-conv formulation but much faster on CPU;
* resampling is bilinear ``F.interpolate`` / ``F.avg_pool2d`` instead of FIR filters (2x bilinear
  upsampling *is* the paper's [1, 3, 3, 1] filter away from the borders);
* no fp16, no conv clamping, no path-length / R1 logic here (that is training code).

Channel widths: the feature map at resolution ``r`` of an ``S x S`` model has
``min(max_channels, base_channels * 2 ** log2(S / r))`` channels, i.e. ``base_channels`` at full
resolution, doubling per halving, capped at ``max_channels``; the same rule in both networks.
The defaults (base 8, cap 128: 4x4: 64, 8x8: 32, 16x16: 16, 32x32: 8 channels at 32x32) are sized
for CPU: one D step + one G step at batch 32 costs ~50-55 ms on 2 cores (base 16: ~85-95 ms,
base 64: ~500 ms; the repo's default DCGAN: ~75 ms). On a GPU raise them by config (e.g. base
64-128, cap 256-512).

Number of styles (``num_ws``): the StyleGAN2 convention ``num_convs + 1`` = ``2 * log2(S) - 2``
(8 at 32x32, 18 at 1024x1024). Each toRGB shares its w with the *next* block's first conv, and the
last toRGB gets the extra one.
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import nn

from genlab.checks import require_positive
from genlab.networks.conditioning import (
    ClassEmbedding,
    check_labels,
    check_num_classes,
    class_weights,
)
from genlab.networks.dcgan import _num_upsamplings

_SQRT2 = math.sqrt(2.0)
_NOISE_SEED = 20200101  # fixed so eval-mode ("const") noise is the same in every fresh model


def _lrelu_(x: torch.Tensor) -> torch.Tensor:
    """In-place leaky ReLU(0.2). StyleGAN's sqrt(2) activation gain, which keeps activations at
    ~unit variance, is folded by the callers into the (small) weights and biases before it, since
    lrelu(a * x) == a * lrelu(x) for a > 0: one pass less over every activation map."""
    return F.leaky_relu_(x, 0.2)


def _check_unit_interval(name: str, value: float, *, closed_top: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and 0.0 <= value and (value <= 1.0 if closed_top else value < 1.0)
    if not ok:
        interval = "[0, 1]" if closed_top else "[0, 1)"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def _check_float(name: str, value: float, *, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        kind = "positive finite number" if positive else "finite number"
        raise ValueError(f"{name} must be a {kind}, got {value!r}")
    return float(value)


def _width(resolution: int, image_size: int, base_channels: int, max_channels: int) -> int:
    """Channels at ``resolution``: base at full size, doubling per halving, capped."""
    return min(max_channels, base_channels * (image_size // resolution))


def _normalize_2nd_moment(x: torch.Tensor) -> torch.Tensor:
    """StyleGAN's pixel norm: each row scaled to unit mean square."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


def _same_batch(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (B, *) tensors with the same batch size, a batch of one repeated to the other's.
    A traced export always passes equal batches (and comparing shapes there would warn)."""
    if torch.jit.is_tracing() or a.shape[0] == b.shape[0]:
        return a, b
    if a.shape[0] == 1 and b.shape[0] != 1:
        a = a.expand(b.shape[0], *a.shape[1:])
    elif b.shape[0] == 1 and a.shape[0] != 1:
        b = b.expand(a.shape[0], *b.shape[1:])
    return a, b


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def _conv_layout(x: torch.Tensor) -> torch.Tensor:
    """Channels-last before each conv: oneDNN on CPU is several times faster on thin, high-res
    maps (e.g. 16->8 channels at 32x32) and cuDNN is no slower; a no-op for traced/ONNX graphs."""
    return x.contiguous(memory_format=torch.channels_last)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate.

    The weight is stored as N(0, 1) / lr_multiplier and scaled by lr_multiplier / sqrt(fan_in) at
    run time, so Adam's per-parameter step size acts equally on every layer (and, with
    lr_multiplier < 1, more slowly on the mapping network).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
        activation: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = (
            nn.Parameter(torch.full((out_features,), float(bias_init) / lr_multiplier))
            if bias
            else None
        )
        act_gain = _SQRT2 if activation else 1.0
        self.weight_gain = lr_multiplier / math.sqrt(in_features) * act_gain
        self.bias_gain = lr_multiplier * act_gain
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.bias_gain
        x = F.linear(x, self.weight * self.weight_gain, bias)
        return _lrelu_(x) if self.activation else x

    def extra_repr(self) -> str:
        out_features, in_features = self.weight.shape
        return f"{in_features}, {out_features}, activation={self.activation}"


class EqualConv2d(nn.Module):
    """Conv2d ('same' padding) with equalized learning rate, optional 2x average-pool downsample.

    With ``down=True`` the input is average-pooled *before* the conv: the same linear operator
    family as StyleGAN2's blur + strided conv, at a quarter of the cost. ``gain`` scales the
    output (folded into weight and bias, like the activation's sqrt(2)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: bool = True,
        down: bool = False,
        gain: float = 1.0,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.bias_gain = gain * (_SQRT2 if activation else 1.0)
        self.weight_gain = self.bias_gain / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2
        self.activation = activation
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = F.avg_pool2d(x, 2)
        bias = None if self.bias is None else self.bias * self.bias_gain
        x = F.conv2d(_conv_layout(x), self.weight * self.weight_gain, bias, padding=self.padding)
        return _lrelu_(x) if self.activation else x

    def extra_repr(self) -> str:
        out_channels, in_channels, k, _ = self.weight.shape
        return (
            f"{in_channels}, {out_channels}, kernel_size={k}, "
            f"activation={self.activation}, down={self.down}"
        )


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool = True,
    upsample: bool = False,
) -> torch.Tensor:
    """Per-sample modulated conv, computed without per-sample weights.

    Equivalent to convolving sample b with ``weight * styles[b]`` (scaled along input channels)
    and, if ``demodulate``, rescaling each output filter to unit norm, but done as
    ``(conv(x * s, w)) * d``: one shared-weight conv instead of a grouped conv with B copies of
    the weight. Demod coefficients ``d[b, o] = rsqrt(sum_{i,k} (w[o,i,k] s[b,i])^2 + 1e-8)`` are a
    single (B, I) @ (I, O) matmul because sum_k w^2 factors out. ``upsample`` doubles the
    resolution (bilinear) between modulation and conv; both are per-channel linear so it is the
    same as upsampling first, on 4x fewer values.
    """
    x = x * styles[:, :, None, None]
    if upsample:
        x = _upsample(x)
    x = F.conv2d(_conv_layout(x), weight, padding=weight.shape[-1] // 2)
    if demodulate:
        x = x * demodulation(weight, styles)[:, :, None, None]
    return x


def demodulation(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """(B, O) coefficients that give every modulated filter ``weight[o] * styles[b]`` unit norm."""
    energy = styles.square() @ weight.square().sum(dim=(2, 3)).t()  # sum_k w^2 factors out
    return torch.rsqrt(energy + 1e-8)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (+ optional 2x upsample), noise, bias, leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        *,
        upsample: bool = False,
        noise_generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.weight_gain = 1.0 / math.sqrt(in_channels * 9)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros(out_channels))
        self.upsample = upsample
        self.resolution = resolution
        # Fixed noise for eval mode, so sampling/export is deterministic; (1, 1, H, W) broadcasts
        # over any batch size, which keeps traced graphs batch-agnostic.
        self.register_buffer(
            "noise_const", torch.randn(1, 1, resolution, resolution, generator=noise_generator)
        )

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        weight = self.weight * self.weight_gain
        x = modulated_conv2d(x, weight, styles, demodulate=False, upsample=self.upsample)
        if self.training:
            noise = torch.randn(
                x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype
            )
        else:
            noise = self.noise_const
        # lrelu(x * demod + bias + noise * strength) * sqrt(2) in three passes over the maps (the
        # sqrt(2) goes into the small per-channel factors), keeping x's channels-last layout.
        demod = demodulation(weight, styles) * _SQRT2
        x = torch.addcmul(self.bias[None, :, None, None] * _SQRT2, x, demod[:, :, None, None])
        x = torch.addcmul(x, noise, self.noise_strength[None, :, None, None] * _SQRT2)
        return _lrelu_(x)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels, no demodulation, + bias, no activation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight * self.weight_gain, styles, demodulate=False)
        return x + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution: [upsampling conv,] conv, toRGB. The 4x4 block starts from a constant."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        image_channels: int,
        noise_generator: torch.Generator,
    ):
        super().__init__()
        self.resolution = resolution
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
            self.conv0 = None
        else:
            self.const = None
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim,
                resolution,
                upsample=True,
                noise_generator=noise_generator,
            )
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, noise_generator=noise_generator
        )
        self.torgb = ToRGB(out_channels, image_channels, w_dim)
        self.num_conv = 1 if self.conv0 is None else 2

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``ws``: (B, num_conv + 1, w_dim), the last one for toRGB."""
        if self.conv0 is None:
            # (1, C, 4, 4): the first layer's modulation broadcasts it over the batch.
            x = self.conv1(self.const[None], ws[:, 0])
        else:
            x = self.conv0(x, ws[:, 0])
            x = self.conv1(x, ws[:, 1])
        rgb = self.torgb(x, ws[:, self.num_conv])
        img = rgb if img is None else _upsample(img) + rgb
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> images, via 4x4 ... SxS blocks with skip-connected toRGBs."""

    def __init__(
        self, w_dim: int, channels: int, image_size: int, base_channels: int, max_channels: int
    ):
        super().__init__()
        stages = _num_upsamplings(image_size)
        resolutions = [4 * 2**i for i in range(stages + 1)]
        noise_generator = torch.Generator().manual_seed(_NOISE_SEED)
        blocks = []
        in_channels = 0
        for res in resolutions:
            out_channels = _width(res, image_size, base_channels, max_channels)
            blocks.append(
                SynthesisBlock(in_channels, out_channels, w_dim, res, channels, noise_generator)
            )
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.num_ws = sum(block.num_conv for block in self.blocks) + 1

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        x = img = None
        idx = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, idx : idx + block.num_conv + 1])
            idx += block.num_conv
        return img


class StyleGANGenerator(nn.Module):
    """z (B, latent_dim) -> images (B, channels, size, size), roughly in [-1, 1] (not clamped).

    Train mode: w_avg tracking, style-mixing regularisation and fresh per-layer noise, all drawn
    from torch's global RNG. Eval mode: no mixing, constant noise, truncation by
    ``self.truncation_psi`` (a plain float; 1.0 = off), so the forward is deterministic and
    traceable with a dynamic batch size.

    With ``num_classes > 0`` it is StyleGAN2-ADA's conditional generator: the label's embedding,
    normalised like z, is concatenated to z at the mapping network's input. Beyond SG2-ADA, it
    also tracks one w centre per class (``w_avg_class``), and truncation pulls a sample towards
    its own class's centre rather than the global mean (which would blur classes together).
    """

    def __init__(
        self,
        latent_dim: int = 64,
        w_dim: int = 128,
        mapping_depth: int = 4,
        mapping_lr_multiplier: float = 0.01,
        channels: int = 1,
        image_size: int = 32,
        base_channels: int = 8,
        max_channels: int = 128,
        style_mixing_prob: float = 0.9,
        truncation_psi: float = 1.0,
        w_avg_beta: float = 0.995,
        num_classes: int = 0,
    ):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        require_positive(
            latent_dim=latent_dim,
            w_dim=w_dim,
            mapping_depth=mapping_depth,
            channels=channels,
            image_size=image_size,
            base_channels=base_channels,
            max_channels=max_channels,
        )
        _num_upsamplings(image_size)
        mapping_lr_multiplier = _check_float(
            "mapping_lr_multiplier", mapping_lr_multiplier, positive=True
        )
        self.latent_dim = latent_dim
        self.w_dim = w_dim
        self.channels = channels
        self.image_size = image_size
        self.style_mixing_prob = _check_unit_interval("style_mixing_prob", style_mixing_prob)
        self.truncation_psi = _check_float("truncation_psi", truncation_psi)
        self.w_avg_beta = _check_unit_interval("w_avg_beta", w_avg_beta, closed_top=False)

        layers = []
        for i in range(mapping_depth):
            layers.append(
                EqualLinear(
                    (latent_dim + (w_dim if num_classes else 0)) if i == 0 else w_dim,
                    w_dim,
                    lr_multiplier=mapping_lr_multiplier,
                    activation=True,
                )
            )
        self.mapping_layers = nn.Sequential(*layers)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        if num_classes:
            self.embed = ClassEmbedding(num_classes, w_dim)
            self.register_buffer("w_avg_class", torch.zeros(num_classes, w_dim))
        self.synthesis_network = SynthesisNetwork(
            w_dim, channels, image_size, base_channels, max_channels
        )
        self.num_ws = self.synthesis_network.num_ws

    def mapping(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) [, labels] -> w (B, w_dim): pixel norm (of z and of the label's
        embedding, concatenated), then the MLP. Never touches w_avg. A batch of one z or one
        label is repeated to the other's batch size."""
        check_labels(self.num_classes, labels)
        z = _normalize_2nd_moment(z)
        if labels is not None:
            z, embedded = _same_batch(z, _normalize_2nd_moment(self.embed(labels)))
            z = torch.cat([z, embedded], dim=1)
        return self.mapping_layers(z)

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """ws (B, num_ws, w_dim) -> images (B, channels, size, size)."""
        return self.synthesis_network(ws)

    def w_centre(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Where truncation pulls towards: ``w_avg`` (w_dim,), or with labels each sample's
        class centre (B, w_dim) (a blend of centres for blended class weights)."""
        if labels is None or not self.num_classes:
            return self.w_avg
        return class_weights(labels, self.num_classes, self.w_avg.dtype) @ self.w_avg_class

    def truncate(
        self, w: torch.Tensor, psi: float, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pull w (B, w_dim) or ws (B, num_ws, w_dim) towards the centre: c + psi * (w - c),
        with c = ``w_centre(labels)``.

        Computed in w_avg's precision and returned in w's: under autocast the mapping's w is
        bf16 while w_avg stays fp32, and ``lerp`` takes no mixed dtypes (in fp32 both casts are
        no-ops).
        """
        centre = self.w_centre(labels)
        if centre.dim() == 2 and w.dim() == 3:
            centre = centre[:, None]
        return centre.lerp(w.to(centre.dtype), float(psi)).to(w.dtype)

    @torch.no_grad()
    def track_w_avg(self, w: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Move w_avg towards the batch's mean w (decay ``w_avg_beta``), in w_avg's own fp32;
        with labels, each class's centre towards the batch's mean w of that class.

        Under bf16 autocast the mapping returns bf16 w; averaging those into a bf16 copy would
        round away most of each small (1 - beta) step, so the buffer never changes dtype.
        """
        w = w.detach().to(self.w_avg.dtype)
        self.w_avg.copy_(w.mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if labels is not None and self.num_classes:
            weights = class_weights(labels, self.num_classes, w.dtype)
            counts = weights.sum(dim=0)
            present = counts > 0  # a class absent from the batch keeps its centre
            means = (weights.t() @ w) / counts.clamp(min=1e-8)[:, None]
            moved = means.lerp(self.w_avg_class, self.w_avg_beta)
            self.w_avg_class.copy_(torch.where(present[:, None], moved, self.w_avg_class))

    def _broadcast(self, w: torch.Tensor) -> torch.Tensor:
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        w = self.mapping(z, labels)
        if self.training:
            self.track_w_avg(w, labels)
            if self.style_mixing_prob > 0 and torch.rand(()).item() < self.style_mixing_prob:
                crossover = int(torch.randint(1, self.num_ws, ()).item())
                return self._mixed(w, self.mapping(torch.randn_like(z), labels), crossover)
        elif self.truncation_psi != 1.0:
            w = self.truncate(w, self.truncation_psi, labels)
        return self.synthesis(self._broadcast(w))

    def _mixed(self, w1: torch.Tensor, w2: torch.Tensor, crossover: int) -> torch.Tensor:
        w1, w2 = torch.broadcast_tensors(w1, w2)
        ws = torch.cat(
            [
                w1.unsqueeze(1).expand(-1, crossover, -1),
                w2.unsqueeze(1).expand(-1, self.num_ws - crossover, -1),
            ],
            dim=1,
        )
        return self.synthesis(ws)

    def mix_styles(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        crossover: int,
        psi: float = 1.0,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Images whose first ``crossover`` ws come from z1 and the rest from z2.

        Small crossovers take only coarse styles (pose, layout) from z1; large ones keep most of
        z1 and take fine detail from z2. ``0 <= crossover <= num_ws``; z1 and z2 broadcast over
        the batch (e.g. one z1 against many z2). Uses the module's current mode for noise.
        A conditional generator maps both with ``labels`` (one class for the whole image).
        """
        try:
            index = operator.index(crossover)
        except TypeError:
            index = -1
        if isinstance(crossover, bool) or not 0 <= index <= self.num_ws:
            raise ValueError(
                f"crossover must be an integer in [0, num_ws={self.num_ws}], got {crossover!r}"
            )
        psi = _check_float("psi", psi)
        w1, w2 = self.mapping(z1, labels), self.mapping(z2, labels)
        if psi != 1.0:
            w1, w2 = self.truncate(w1, psi, labels), self.truncate(w2, psi, labels)
        return self._mixed(w1, w2, index)


class DiscriminatorBlock(nn.Module):
    """Residual block: conv, downsampling conv, plus a 1x1 downsampled skip, scaled by 1/sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3)
        # Both branches carry the 1/sqrt(2) of the residual sum, folded into their weights.
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, down=True, gain=1 / _SQRT2)
        self.skip = EqualConv2d(
            in_channels, out_channels, 1, bias=False, activation=False, down=True, gain=1 / _SQRT2
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.conv1(self.conv0(x))


class MinibatchStdDev(nn.Module):
    """Appends one channel: the feature std within groups of samples, averaged, per group.

    Lets D see batch-level diversity (a cheap defence against mode collapse). The group size is
    the largest divisor of the batch not above ``group_size``, so any batch size works (batch 1
    gives a constant channel).
    """

    def __init__(self, group_size: int):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        group = min(self.group_size, batch)
        while batch % group:
            group -= 1
        y = x.reshape(group, -1, channels, height, width)  # sample n is in group n % (B / G)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = torch.sqrt(y + 1e-8).mean(dim=(1, 2, 3))  # (B / G,)
        y = y.reshape(-1, 1, 1, 1).repeat(group, 1, height, width)
        return torch.cat([x, y], dim=1)


class StyleGANDiscriminator(nn.Module):
    """images (B, channels, size, size) [, labels] -> one real/fake logit per image (B,).

    With ``num_classes > 0`` it is StyleGAN2-ADA's projection discriminator: the last layer
    gives a feature vector, and the logit is its inner product with the label's normalised
    embedding, scaled by 1/sqrt(dim).
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 32,
        base_channels: int = 8,
        max_channels: int = 128,
        mbstd_group_size: int = 4,
        num_classes: int = 0,
    ):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        require_positive(
            channels=channels,
            image_size=image_size,
            base_channels=base_channels,
            max_channels=max_channels,
            mbstd_group_size=mbstd_group_size,
        )
        stages = _num_upsamplings(image_size)
        self.channels = channels
        self.image_size = image_size
        resolutions = [image_size // 2**i for i in range(stages + 1)]  # S, S/2, ..., 4

        def width(res: int) -> int:
            return _width(res, image_size, base_channels, max_channels)

        self.from_rgb = EqualConv2d(channels, width(image_size), 1)
        self.blocks = nn.Sequential(
            *(DiscriminatorBlock(width(res), width(res // 2)) for res in resolutions[:-1])
        )
        final = width(4)
        self.mbstd = MinibatchStdDev(mbstd_group_size)
        self.conv = EqualConv2d(final + 1, final, 3)
        self.fc = EqualLinear(final * 16, final, activation=True)
        self.out = EqualLinear(final, final if num_classes else 1)
        if num_classes:
            self.embed = ClassEmbedding(num_classes, final)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(self.num_classes, labels)
        x = self.blocks(self.from_rgb(images))
        x = self.out(self.fc(self.conv(self.mbstd(x)).flatten(1)))
        if labels is None:
            return x.flatten()
        projection = _normalize_2nd_moment(self.embed(labels))
        return (x * projection).sum(dim=1) / math.sqrt(x.shape[1])
