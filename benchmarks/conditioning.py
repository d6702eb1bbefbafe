"""Training throughput with and without class conditioning, per family: the train stage's own
loop (images/s from its summary, setup excluded) for `model.conditioning=none` and `=class`.

The two configurations alternate within each repeat (their order flips every repeat), so a
busy machine's load falls on both alike; the table gives the median over the repeats and the
conditional run's ratio to the unconditional one.

Run: `python benchmarks/conditioning.py [--steps 100] [--repeats 3]` after `dvc repro fetch`
(~4 min on the 2-core CPU here).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from _common import compose, data_dir, machine, table

FAMILIES = ("dcgan", "vae", "stylegan")
CONDITIONINGS = ("none", "class")


def images_per_s(model: str, conditioning: str, steps: int, data: str) -> float:
    from genlab.stages.train import run_train

    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose(
            f"model={model}",
            f"model.conditioning={conditioning}",
            f"data.dir={data}",
            f"train.steps={steps}",
            f"train.sample_every_n_steps={steps}",
            "logger=csv",
            f"paths.run_dir={run_dir}",
        )
        return run_train(cfg)["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = str(data_dir())
    samples: dict[tuple[str, str], list[float]] = {}
    for model in FAMILIES:
        images_per_s(model, "class", 10, data)  # warm-up: oneDNN kernels, first imports
        for repeat in range(args.repeats):
            order = CONDITIONINGS if repeat % 2 == 0 else CONDITIONINGS[::-1]
            for conditioning in order:
                speed = images_per_s(model, conditioning, args.steps, data)
                samples.setdefault((model, conditioning), []).append(speed)
    rows = []
    for model in FAMILIES:
        plain = statistics.median(samples[(model, "none")])
        conditional = statistics.median(samples[(model, "class")])
        rows.append([model, f"{plain:.0f}", f"{conditional:.0f}", f"{conditional / plain:.2f}"])
    print(machine())
    print(f"{args.steps} steps, median of {args.repeats} repeats (images/s)\n")
    print(table(["family", "unconditional", "class-conditional", "ratio"], rows))


if __name__ == "__main__":
    main()
