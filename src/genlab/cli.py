"""`genlab generate` and `genlab verify`: use an exported model without the training stack."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from genlab.errors import EXIT_BAD_INPUT, GenerateError

EXIT_OK, EXIT_NOT_VERIFIED = 0, 1


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]."""
    seeds: list[int] = []
    try:
        for part in filter(None, text.split(",")):
            if "-" in part[1:]:
                start, end = part.split("-", 1)
                if int(end) < int(start):
                    raise ValueError(part)
                seeds.extend(range(int(start), int(end) + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must look like '0-7' or '1,5,9' (non-negative integers), got {text!r}"
        ) from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be non-negative integers, got {text!r}")
    return seeds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser(
        "generate", help="write images from an exported generator (.onnx or TorchScript .pt)"
    )
    generate.add_argument("model", type=Path, help="exports/<model>/generator.onnx or .pt")
    generate.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    generate.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-15"))
    generate.add_argument("--grid", action="store_true", help="also write grid.png of all seeds")
    generate.add_argument(
        "--interpolate",
        nargs=2,
        type=int,
        metavar=("SEED_A", "SEED_B"),
        help="write the latent path from SEED_A to SEED_B as one strip",
    )
    generate.add_argument("--steps", type=int, default=8, help="images along --interpolate")
    generate.add_argument("--psi", type=float, help="truncation psi (StyleGAN-lite exports)")
    generate.add_argument(
        "--mix",
        nargs=2,
        type=int,
        metavar=("SEED_A", "SEED_B"),
        help="style mixing (StyleGAN-lite): one image per crossover layer",
    )

    verify = commands.add_parser("verify", help="report the provenance of PNG files")
    verify.add_argument("images", type=Path, nargs="+")
    verify.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def _generate(args: argparse.Namespace) -> int:
    from genlab.generate import ExportedGenerator
    from genlab.provenance import save_grid, save_png

    generator = ExportedGenerator.load(args.model)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    psi_note = {} if args.psi is None else {"truncation_psi": str(args.psi)}
    images = generator.images(args.seeds, psi=args.psi)
    written = []
    for seed, image in zip(args.seeds, images, strict=True):
        provenance = generator.provenance(seed=str(seed), **psi_note)
        written.append(save_png(image, out / f"seed_{seed:06d}.png", provenance))
    if args.grid:
        seeds = ",".join(map(str, args.seeds))
        written.append(save_grid(images, out / "grid.png", generator.provenance(seeds=seeds)))
    if args.interpolate:
        a, b = args.interpolate
        strip = generator.interpolate(a, b, args.steps)
        provenance = generator.provenance(interpolation=f"slerp seed {a} -> seed {b}")
        path = out / f"interpolation_{a}_{b}.png"
        written.append(save_grid(strip, path, provenance, nrow=args.steps))
    if args.mix:
        a, b = args.mix
        mixed = generator.mix(a, b, psi=args.psi)
        provenance = generator.provenance(
            style_mixing=f"image k: first k styles from seed {a}, the rest from seed {b}"
        )
        written.append(save_grid(mixed, out / f"mix_{a}_{b}.png", provenance, nrow=len(mixed)))
    print(f"genlab generate: wrote {len(written)} PNG files to {out}")
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from genlab.verify import describe, verify_image

    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        print(f"genlab verify: no such file: {', '.join(missing)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    reports = [verify_image(path) for path in args.images]
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print("\n".join(describe(report) for report in reports))
    return EXIT_OK if all(r["machine_generated"] for r in reports) else EXIT_NOT_VERIFIED


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _generate(args) if args.command == "generate" else _verify(args)
    except GenerateError as error:
        print(f"genlab {args.command}: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
