"""Training throughput: genlab's train stage against a plain PyTorch loop of the same networks,
batch size, data, optimizer, loss, regularizer and EMA. The ratio is what genlab costs.

Run: `python benchmarks/throughput.py` (CPU, ~3 min). On a GPU:
`python benchmarks/throughput.py --accelerator gpu --precision bf16-mixed --compile`.

Precision matrix: `python benchmarks/throughput.py --precision-matrix` measures the train stage
of each family (dcgan, stylegan, vae) in fp32 and bf16-mixed, each with and without
channels_last (`train.speed.channels_last`). The four configurations alternate within each
repeat (their order rotates from repeat to repeat), so a busy machine's load falls on all of
them alike; the table gives the median images/s over the repeats, the min-max spread and the
median's ratio to fp32. Each configuration first runs once, unmeasured, to warm up oneDNN's
kernels. Runtime on the 2-core CPU here (shared, busy): ~9 min with the defaults
(`--steps 60 --repeats 3`); on an idle machine about half. `--json FILE` keeps every sample.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

from _common import compose, data_dir, machine, table

# The precision matrix: label -> (trainer.precision, train.speed.channels_last).
PRECISION_CONFIGS = {
    "fp32": ("32-true", False),
    "fp32 + channels_last": ("32-true", True),
    "bf16-mixed": ("bf16-mixed", False),
    "bf16-mixed + channels_last": ("bf16-mixed", True),
}


def genlab_images_per_s(
    model: str,
    steps: int,
    args: argparse.Namespace,
    precision: str | None = None,
    channels_last: bool = False,
) -> float:
    """The train stage's own loop throughput (setup excluded); ``precision`` overrides
    ``args.precision``."""
    from genlab.stages.train import run_train

    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose(
            *overrides(model, steps, args, precision, channels_last), f"paths.run_dir={run_dir}"
        )
        return run_train(cfg)["images_per_s"]


def overrides(
    model: str,
    steps: int,
    args: argparse.Namespace,
    precision: str | None = None,
    channels_last: bool = False,
) -> list[str]:
    trainer = "gpu" if args.accelerator == "gpu" else "cpu"
    return [
        f"model={model}",
        f"data.dir={data_dir(args.data_dir)}",
        f"trainer={trainer}",
        f"trainer.precision={precision or args.precision}",
        f"train.speed.compile={str(args.compile).lower()}",
        f"train.speed.channels_last={str(channels_last).lower()}",
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


def precision_matrix(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """images/s samples per model and configuration, the configurations interleaved."""
    labels = list(PRECISION_CONFIGS)
    samples: dict[str, dict[str, list[float]]] = {m: {c: [] for c in labels} for m in args.models}
    for model in args.models:  # warm-up: oneDNN builds its kernels on first use
        for label in labels:
            genlab_images_per_s(model, args.warmup_steps, args, *PRECISION_CONFIGS[label])
    for repeat in range(args.repeats):
        order = labels[repeat % len(labels) :] + labels[: repeat % len(labels)]
        for model in args.models:
            for label in order:
                value = genlab_images_per_s(model, args.steps, args, *PRECISION_CONFIGS[label])
                samples[model][label].append(value)
                print(f"repeat {repeat + 1}/{args.repeats} {model} {label}: {value:.1f} img/s")
    return samples


def precision_table(samples: dict[str, dict[str, list[float]]]) -> str:
    rows = []
    for model, by_config in samples.items():
        baseline = statistics.median(by_config["fp32"])
        for label, values in by_config.items():
            median = statistics.median(values)
            spread = f"{min(values):.0f}-{max(values):.0f}"
            rows.append([model, label, f"{median:.0f}", spread, f"{median / baseline:.2f}x"])
    header = ["model", "configuration", "median img/s", "min-max", "vs fp32"]
    return table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", help="default: dcgan stylegan (+ vae, matrix)")
    parser.add_argument("--steps", type=int, help="default: 300 (matrix: 60)")
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument(
        "--precision-matrix",
        action="store_true",
        help="the train stage in fp32 / bf16-mixed x channels_last off / on, interleaved",
    )
    parser.add_argument("--repeats", type=int, default=3, help="matrix: runs per configuration")
    parser.add_argument("--warmup-steps", type=int, default=5, help="matrix: unmeasured run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--data-dir", type=Path, help="a fetched dataset (default: data/digits)")
    args = parser.parse_args()

    if args.precision_matrix:
        args.models = args.models or ["dcgan", "stylegan", "vae"]
        args.steps = args.steps or 60
        started = time.perf_counter()
        samples = precision_matrix(args)
        print(f"\nMachine: {machine()}")
        print(
            f"{args.steps} iterations x {args.repeats} repeats per configuration, batch from "
            f"conf/, accelerator={args.accelerator}, compile={args.compile}, "
            f"{time.perf_counter() - started:.0f} s in all\n"
        )
        print(precision_table(samples))
        if args.json:
            args.json.write_text(json.dumps(samples, indent=2))
        return

    args.models = args.models or ["dcgan", "stylegan"]
    args.steps = args.steps or 300
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
