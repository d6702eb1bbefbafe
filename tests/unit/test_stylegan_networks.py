"""StyleGAN2-lite networks: shapes, the non-fused modulated conv, noise/truncation/mixing
semantics, w_avg tracking, TorchScript/ONNX parity at other batch sizes, a few optimizer steps."""

from __future__ import annotations

import math
import time
import warnings

import pytest
import torch
import torch.nn.functional as F

from genlab.networks.stylegan import (
    EqualLinear,
    StyleGANDiscriminator,
    StyleGANGenerator,
    SynthesisLayer,
    modulated_conv2d,
)

LATENT = 8
TINY = dict(latent_dim=LATENT, w_dim=16, mapping_depth=2, base_channels=4, max_channels=16)
TINY_D = dict(base_channels=4, max_channels=16)


def tiny_generator(**kwargs) -> StyleGANGenerator:
    torch.manual_seed(0)
    return StyleGANGenerator(**{**TINY, **kwargs})


def with_noise(generator: StyleGANGenerator, strength: float = 0.3) -> StyleGANGenerator:
    """Noise strengths start at 0 (noise has no effect); give them a value so it shows."""
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(strength)
    return generator


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("image_size", [32, 64])
def test_shapes(channels, image_size):
    generator = tiny_generator(channels=channels, image_size=image_size)
    discriminator = StyleGANDiscriminator(channels=channels, image_size=image_size, **TINY_D)
    assert generator.num_ws == 2 * int(math.log2(image_size)) - 2
    images = generator(torch.randn(5, LATENT))
    assert images.shape == (5, channels, image_size, image_size)
    assert torch.isfinite(images).all()
    w = generator.mapping(torch.randn(5, LATENT))
    assert w.shape == (5, 16)
    ws = w.unsqueeze(1).repeat(1, generator.num_ws, 1)
    assert generator.synthesis(ws).shape == (5, channels, image_size, image_size)
    assert discriminator(images).shape == (5,)


@pytest.mark.parametrize("batch", [1, 3, 6, 8])
def test_discriminator_any_batch_size(batch):
    torch.manual_seed(0)
    discriminator = StyleGANDiscriminator(mbstd_group_size=4, **TINY_D)
    logits = discriminator(torch.randn(batch, 1, 32, 32))
    assert logits.shape == (batch,)
    assert torch.isfinite(logits).all()


def grouped_reference(x, weight, styles, demodulate):
    """The paper's fused formulation: per-sample weights, one grouped conv."""
    batch, in_channels, height, width = x.shape
    out_channels = weight.shape[0]
    w = weight[None] * styles[:, None, :, None, None]  # (B, O, I, k, k)
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    out = F.conv2d(
        x.reshape(1, batch * in_channels, height, width),
        w.reshape(batch * out_channels, in_channels, *weight.shape[2:]),
        padding=weight.shape[-1] // 2,
        groups=batch,
    )
    return out.reshape(batch, out_channels, *out.shape[2:])


@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("upsample", [False, True])
def test_modulated_conv_matches_grouped_conv(kernel, demodulate, upsample):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 6, 6)
    weight = torch.randn(5, 4, kernel, kernel)
    styles = torch.randn(3, 4)
    ours = modulated_conv2d(x, weight, styles, demodulate=demodulate, upsample=upsample)
    if upsample:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    reference = grouped_reference(x, weight, styles, demodulate)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_synthesis_layer_matches_fused_reference():
    """The layer's folded gains / fused adds are lrelu(modconv + noise * strength + b) * sqrt 2."""
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 5, w_dim=6, resolution=8).eval()
    with torch.no_grad():
        layer.bias.normal_()
        layer.noise_strength.normal_()
    x, w = torch.randn(3, 4, 8, 8), torch.randn(3, 6)
    styles = layer.affine(w)
    conv = grouped_reference(x, layer.weight * layer.weight_gain, styles, demodulate=True)
    pre = conv + layer.noise_const * layer.noise_strength[:, None, None] + layer.bias[:, None, None]
    torch.testing.assert_close(
        layer(x, w), F.leaky_relu(pre, 0.2) * math.sqrt(2), atol=1e-5, rtol=0
    )


def test_equalized_learning_rate():
    torch.manual_seed(0)
    layer = EqualLinear(400, 300, lr_multiplier=0.01, bias_init=1.0)
    assert layer.weight.std().item() == pytest.approx(100, rel=0.05)  # N(0, 1) / lr_multiplier
    assert layer.weight_gain == pytest.approx(0.01 / 20)
    effective = layer.weight * layer.weight_gain
    assert effective.std().item() == pytest.approx(1 / 20, rel=0.05)  # He-like at run time
    assert torch.allclose(layer(torch.zeros(2, 400)), torch.ones(2, 300))  # bias * lr_multiplier


def test_eval_is_deterministic_and_train_noise_is_fresh():
    generator = with_noise(tiny_generator(style_mixing_prob=0.0))
    z = torch.randn(4, LATENT)
    generator.eval()
    assert torch.equal(generator(z), generator(z))
    generator.train()
    assert not torch.allclose(generator(z), generator(z))


def test_noise_const_is_a_batch_broadcast_buffer():
    generator = tiny_generator()
    noise = {n: b for n, b in generator.named_buffers() if n.endswith("noise_const")}
    assert len(noise) == generator.num_ws - 1  # one per conv
    for buffer in noise.values():
        assert buffer.shape[:2] == (1, 1)
    again = tiny_generator()  # seeded at construction: the same in every fresh model
    for name, buffer in again.named_buffers():
        if name.endswith("noise_const"):
            assert torch.equal(buffer, noise[name])


def test_truncation_psi_zero_collapses_to_the_average_image():
    generator = with_noise(tiny_generator())
    generator(torch.randn(16, LATENT))  # train mode: moves w_avg off zero
    assert generator.w_avg.abs().sum() > 0
    generator.eval()
    generator.truncation_psi = 0.0
    images = generator(torch.randn(5, LATENT))
    average = generator.synthesis(generator.w_avg.expand(1, generator.num_ws, -1))
    torch.testing.assert_close(images, average.expand_as(images), atol=1e-5, rtol=0)
    generator.truncation_psi = 0.5
    z = torch.randn(2, LATENT)
    w = generator.mapping(z)
    torch.testing.assert_close(
        generator.truncate(w, 0.5), generator.w_avg + 0.5 * (w - generator.w_avg)
    )
    generator.truncation_psi = 1.0
    assert not torch.allclose(generator(z)[0], generator(z)[1])


def test_style_mixing():
    generator = tiny_generator().eval()
    z1, z2 = torch.randn(3, LATENT), torch.randn(3, LATENT)
    out1, out2 = generator(z1), generator(z2)
    mixed = generator.mix_styles(z1, z2, crossover=4)
    assert not torch.allclose(mixed, out1) and not torch.allclose(mixed, out2)
    torch.testing.assert_close(generator.mix_styles(z1, z2, generator.num_ws), out1)
    torch.testing.assert_close(generator.mix_styles(z1, z2, 0), out2)
    one_vs_many = generator.mix_styles(z1[:1], z2, crossover=2)
    assert one_vs_many.shape == out2.shape
    with pytest.raises(ValueError, match="crossover"):
        generator.mix_styles(z1, z2, generator.num_ws + 1)

    # Training-time regularisation: noise strengths are 0 at init, so only mixing changes output.
    z = torch.randn(4, LATENT)
    reference = generator(z)
    generator.train()
    generator.style_mixing_prob = 0.0
    torch.testing.assert_close(generator(z), reference)
    generator.style_mixing_prob = 1.0
    torch.manual_seed(1)
    mixed_a = generator(z)
    assert not torch.allclose(mixed_a, reference)
    torch.manual_seed(1)
    torch.testing.assert_close(generator(z), mixed_a)  # global RNG: seeding reproduces it


def test_w_avg_tracks_in_train_mode_only():
    generator = tiny_generator(w_avg_beta=0.9)
    z = torch.randn(8, LATENT)
    generator.train()
    generator(z)
    expected = 0.1 * generator.mapping(z).mean(dim=0)
    torch.testing.assert_close(generator.w_avg, expected.detach())
    assert not generator.w_avg.requires_grad
    generator.eval()
    before = generator.w_avg.clone()
    generator(torch.randn(8, LATENT))
    generator.mix_styles(z, z, 3)
    assert torch.equal(generator.w_avg, before)


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_w_avg_tracks_in_fp32_under_bf16_autocast():
    generator = tiny_generator(w_avg_beta=0.9).train()
    generator.style_mixing_prob = 0.0
    z = torch.randn(8, LATENT)
    with bf16_autocast():
        w = generator.mapping(z)
        images = generator(z)
    assert w.dtype == torch.bfloat16, "the mapping must run in bf16 for this test to mean much"
    assert torch.isfinite(images).all()
    assert generator.w_avg.dtype == torch.float32
    # The bf16 w's mean, taken in fp32: no second rounding to bf16.
    torch.testing.assert_close(generator.w_avg, 0.1 * w.float().mean(dim=0), rtol=0, atol=1e-6)


def test_truncation_under_bf16_autocast_stays_close_to_fp32():
    generator = tiny_generator(truncation_psi=0.5)
    generator(torch.randn(16, LATENT))  # train mode, fp32: moves w_avg off zero
    generator.eval()
    z = torch.randn(4, LATENT)
    reference = generator(z)
    w_avg = generator.w_avg.clone()
    with bf16_autocast():
        truncated = generator(z)
        mixed = generator.mix_styles(z, z.flip(0), crossover=2, psi=0.5)
    assert torch.isfinite(truncated).all() and torch.isfinite(mixed).all()
    assert torch.equal(generator.w_avg, w_avg) and generator.w_avg.dtype == torch.float32
    # bf16 keeps ~3 significant digits through a few convs: same picture, not the same bits.
    error = (truncated.float() - reference).abs().max() / reference.abs().max()
    assert error < 0.1, f"bf16 truncated images are {error:.1%} off the fp32 ones"


def exportable_generator() -> StyleGANGenerator:
    generator = with_noise(tiny_generator(truncation_psi=0.7))
    generator(torch.randn(8, LATENT))  # non-zero w_avg so truncation is exercised
    return generator.eval()


def test_torchscript_trace_is_batch_agnostic():
    generator = exportable_generator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(generator, torch.randn(4, LATENT), check_trace=False)
    for batch in (1, 9):
        z = torch.randn(batch, LATENT)
        out = traced(z)
        assert out.shape == (batch, 1, 32, 32)
        assert (out - generator(z)).abs().max().item() < 1e-4


def test_onnx_export_matches_eager(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    generator = exportable_generator()
    path = tmp_path / "g.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            generator,
            (torch.randn(4, LATENT),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["z"],
            output_names=["images"],
            dynamic_axes={"z": {0: "batch"}, "images": {0: "batch"}},
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    z = torch.randn(3, LATENT)
    (out,) = session.run(None, {"z": z.numpy()})
    assert out.shape == (3, 1, 32, 32)
    assert (torch.from_numpy(out) - generator(z)).abs().max().item() < 1e-4


def test_adam_steps_with_non_saturating_loss():
    generator = tiny_generator()
    torch.manual_seed(0)
    discriminator = StyleGANDiscriminator(**TINY_D)
    g_opt = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.0, 0.99))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-3, betas=(0.0, 0.99))
    g_before = [p.detach().clone() for p in generator.parameters()]
    d_before = [p.detach().clone() for p in discriminator.parameters()]
    real = torch.rand(8, 1, 32, 32) * 2 - 1
    for _ in range(3):
        fake = generator(torch.randn(8, LATENT))
        d_loss = F.softplus(discriminator(fake.detach())).mean()
        d_loss = d_loss + F.softplus(-discriminator(real)).mean()
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = F.softplus(-discriminator(generator(torch.randn(8, LATENT)))).mean()
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        assert math.isfinite(d_loss.item()) and math.isfinite(g_loss.item())
    # every parameter that the loss reaches moved (noise strengths too, through train-mode noise)
    for before, network in ((g_before, generator), (d_before, discriminator)):
        params = network.parameters()
        assert all(not torch.equal(a, b) for a, b in zip(before, params, strict=True))


def test_double_backward_for_r1_and_path_length():
    """R1 and path-length penalties differentiate through gradients: every op must support it."""
    generator = tiny_generator()
    torch.manual_seed(0)
    discriminator = StyleGANDiscriminator(**TINY_D)
    real = torch.randn(4, 1, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
    grad.square().sum().backward()
    assert all(p.grad is not None for n, p in discriminator.named_parameters() if "weight" in n)

    w = generator.mapping(torch.randn(4, LATENT))
    ws = w.unsqueeze(1).repeat(1, generator.num_ws, 1).detach().requires_grad_()
    images = generator.synthesis(ws)
    (grad,) = torch.autograd.grad((images * torch.randn_like(images)).sum(), ws, create_graph=True)
    grad.square().sum().backward()
    assert generator.synthesis_network.blocks[-1].conv1.weight.grad is not None


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(latent_dim=0), "latent_dim"),
        (dict(w_dim=-1), "w_dim"),
        (dict(mapping_depth=0), "mapping_depth"),
        (dict(mapping_lr_multiplier=0.0), "mapping_lr_multiplier"),
        (dict(channels=0), "channels"),
        (dict(image_size=48), "image_size"),
        (dict(image_size=4), "image_size"),
        (dict(base_channels=0), "base_channels"),
        (dict(max_channels=2.5), "max_channels"),
        (dict(style_mixing_prob=1.5), "style_mixing_prob"),
        (dict(style_mixing_prob=-0.1), "style_mixing_prob"),
        (dict(truncation_psi="0.7"), "truncation_psi"),
        (dict(truncation_psi=float("nan")), "truncation_psi"),
        (dict(w_avg_beta=1.0), "w_avg_beta"),
        (dict(w_avg_beta=-0.5), "w_avg_beta"),
    ],
)
def test_bad_generator_args_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=name):
        StyleGANGenerator(**kwargs)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(channels=0), "channels"),
        (dict(image_size=100), "image_size"),
        (dict(base_channels=-8), "base_channels"),
        (dict(max_channels=0), "max_channels"),
        (dict(mbstd_group_size=0), "mbstd_group_size"),
    ],
)
def test_bad_discriminator_args_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=name):
        StyleGANDiscriminator(**kwargs)


def test_default_size_timing():
    """Prints (does not assert) one D step + one G step at batch 32, 32x32, 1 channel."""
    torch.manual_seed(0)
    generator, discriminator = StyleGANGenerator(), StyleGANDiscriminator()
    real = torch.randn(32, 1, 32, 32)

    def step() -> None:
        with torch.no_grad():
            fake = generator(torch.randn(32, generator.latent_dim))
        d_loss = F.softplus(discriminator(fake)).mean() + F.softplus(-discriminator(real)).mean()
        d_loss.backward()
        g_loss = F.softplus(-discriminator(generator(torch.randn(32, generator.latent_dim))))
        g_loss.mean().backward()

    step()
    start = time.perf_counter()
    for _ in range(5):
        step()
    per_step = (time.perf_counter() - start) / 5 * 1000
    params = (
        sum(p.numel() for p in generator.parameters()),
        sum(p.numel() for p in discriminator.parameters()),
    )
    print(
        f"\nStyleGAN-lite defaults: D step + G step (fwd+bwd) at batch 32, 32x32x1: "
        f"{per_step:.1f} ms on {torch.get_num_threads()} threads; params G {params[0]:,} "
        f"D {params[1]:,}"
    )
