"""Training throughput: genlab's train stage against a plain PyTorch loop of the same networks,
batch size, data, optimizer, loss, regularizer and EMA. The ratio is what genlab costs.

Run: `python benchmarks/throughput.py` (CPU, ~3 min). On a GPU:
`python benchmarks/throughput.py --accelerator gpu --precision bf16-mixed --compile`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

from _common import compose, data_dir, machine, table


def genlab_images_per_s(model: str, steps: int, args: argparse.Namespace) -> float:
    from genlab.stages.train import run_train

    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose(*overrides(model, steps, args), f"paths.run_dir={run_dir}")
        return run_train(cfg)["images_per_s"]


def overrides(model: str, steps: int, args: argparse.Namespace) -> list[str]:
    trainer = "gpu" if args.accelerator == "gpu" else "cpu"
    return [
        f"model={model}",
        f"data.dir={data_dir()}",
        f"trainer={trainer}",
        f"trainer.precision={args.precision}",
        f"train.speed.compile={str(args.compile).lower()}",
        f"train.steps={steps}",
        "logger=csv",
    ]


def plain_images_per_s(model: str, steps: int, args: argparse.Namespace) -> float:
    """The GAN training step written by hand: no Lightning, no callbacks, no logging."""
    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader, TensorDataset

    from genlab.data.datamodule import to_unit_range
    from genlab.data.store import read_split

    cfg = compose(*overrides(model, steps, args))
    pl.seed_everything(cfg.seed)
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    module = instantiate(cfg.model).to(device)
    generator, discriminator, loss = module.generator, module.discriminator, module.loss
    if args.compile:
        generator.compile()
        discriminator.compile()
    opt_g, opt_d = module.configure_optimizers()
    images = to_unit_range(torch.from_numpy(read_split(cfg.data.dir, "train").images))
    loader = DataLoader(
        TensorDataset(images), batch_size=cfg.data.batch_size, shuffle=True, drop_last=True
    )
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if args.precision.startswith("bf16")
        else contextlib.nullcontext()
    )
    done, started = 0, time.perf_counter()
    while done < steps:
        for (real,) in loader:
            real = real.to(device, non_blocking=True)
            with autocast:
                fake = generator(torch.randn(real.shape[0], generator.latent_dim, device=device))
                d_loss = loss.discriminator(discriminator(real), discriminator(fake.detach()))
                if module.regularizer is not None:
                    penalty = module.regularizer(discriminator, real, fake.detach(), done)
                    if penalty is not None:
                        d_loss = d_loss + penalty
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            with autocast:
                g_loss = loss.generator(discriminator(fake))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            module.ema_generator.update_parameters(generator)
            done += 1
            if done == steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * cfg.data.batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["dcgan", "stylegan"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    rows, results = [], {}
    for model in args.models:
        plain = plain_images_per_s(model, args.steps, args)
        ours = genlab_images_per_s(model, args.steps, args)
        results[model] = {"plain": plain, "genlab": ours, "ratio": ours / plain}
        rows.append([model, f"{plain:.0f}", f"{ours:.0f}", f"{ours / plain:.1%}"])
    print(f"\nMachine: {machine()}")
    print(
        f"{args.steps} iterations, batch from conf/, accelerator={args.accelerator}, "
        f"precision={args.precision}, compile={args.compile}\n"
    )
    print(table(["model", "plain PyTorch img/s", "genlab img/s", "genlab / plain"], rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
