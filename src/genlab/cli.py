"""`genlab generate`, `genlab verify`, `genlab keys` and `genlab runs`: use an exported model
without the training stack, check what a file's signed content credentials prove, manage the
signing keys, and list every run of a workspace in one table."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from genlab.checks import printable
from genlab.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_NOT_VERIFIED,
    EXIT_OK,
    CredentialsError,
    GenerateError,
    OutputPathError,
)
from genlab.generate import (
    MAX_SEED,
    MAX_SEEDS,
    MAX_STEPS,
    MIN_STEPS,
    TRUST_FLAG,
    ExportedGenerator,
    check_per_class,
    check_psi,
    check_seed,
    check_steps,
    class_folder,
    parse_seeds,
)
from genlab.layout import GENERATED_DIR, MULTIRUN_DIR, RUNS_PAGE

T = TypeVar("T")
_RUNS_PAGE_IN_WORKSPACE = object()  # `genlab runs --html` without a PATH (argparse converts
# a string const with the argument's type, so the sentinel is not one)


def _argument(
    convert: Callable[[str], T], check: Callable[[T], T], wanted: str
) -> Callable[[str], T]:
    """An argparse type: ``convert`` the text, then generate's own ``check`` (the one the API
    applies too), a GenerateError becoming argparse's usage error (exit 2, one line)."""

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        try:
            return check(value)
        except GenerateError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def seeds_value(text: str) -> list[int]:
    """--seeds: generate.parse_seeds as an argparse type."""
    try:
        return parse_seeds(text)
    except GenerateError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


seed_value = _argument(int, check_seed, f"a seed (an integer in 0..{MAX_SEED})")
steps_value = _argument(int, check_steps, f"an integer in {MIN_STEPS}..{MAX_STEPS}")
psi_value = _argument(float, check_psi, "a finite number")
per_class_value = _argument(int, check_per_class, f"an integer in 1..{MAX_SEEDS}")
DEFAULT_SEEDS = "0-15"


def default_out(model: Path) -> Path:
    """Where `genlab generate` writes without --out: ``generated/<the export folder's name>``
    under the current directory (``exports/vae_class-seed0/generator.onnx`` ->
    ``generated/vae_class-seed0``), so the runs of two exports never mix."""
    folder = model.resolve().parent.name
    return Path(GENERATED_DIR) / (folder or "export")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser(
        "generate", help="write images from an exported generator (generator.onnx)"
    )
    generate.add_argument(
        "model",
        type=Path,
        help=f"exports/<run>/generator.onnx (a TorchScript .pt needs {TRUST_FLAG})",
    )
    generate.add_argument(
        "--out",
        type=Path,
        help=f"folder for the PNGs (default: {GENERATED_DIR}/<the export folder's name>, "
        f"e.g. {GENERATED_DIR}/vae_class-seed0, under the current directory)",
    )
    generate.add_argument(
        "--seeds",
        type=seeds_value,
        help=f"e.g. 0-7 or 1,5,9 (default {DEFAULT_SEEDS}): at most {MAX_SEEDS} per call, "
        f"each in 0..{MAX_SEED}",
    )
    generate.add_argument(
        "--class",
        dest="class_",
        metavar="CLASS",
        help="class-conditional exports: generate this class (its name, or its index "
        "0..num_classes-1; a name is matched first). Without it a conditional export "
        "generates balanced classes: seed i of the list gets class i mod num_classes, and "
        "--interpolate / --mix write one row per class",
    )
    generate.add_argument(
        "--list-classes",
        action="store_true",
        help="print the export's classes (index and name) and exit",
    )
    generate.add_argument(
        "--per-class",
        type=per_class_value,
        metavar="N",
        help="class-conditional exports: N images of every class (seeds 0..N-1, the same "
        "latents in each class), one sub-folder per class named <index>-<name> (the name "
        "reduced to safe characters); with --class, of that class only. Replaces --seeds",
    )
    generate.add_argument(
        TRUST_FLAG,
        action="store_true",
        help="load a TorchScript .pt file: the file is a program: it will run with your "
        "permissions; only for files you made or trust",
    )
    generate.add_argument("--grid", action="store_true", help="also write grid.png of all seeds")
    generate.add_argument(
        "--interpolate",
        nargs=2,
        type=seed_value,
        metavar=("SEED_A", "SEED_B"),
        help="write the latent path from SEED_A to SEED_B as one strip",
    )
    generate.add_argument(
        "--steps",
        type=steps_value,
        default=8,
        help=f"images along --interpolate ({MIN_STEPS}..{MAX_STEPS})",
    )
    generate.add_argument("--psi", type=psi_value, help="truncation psi (StyleGAN-lite exports)")
    generate.add_argument(
        "--mix",
        nargs=2,
        type=seed_value,
        metavar=("SEED_A", "SEED_B"),
        help="style mixing (StyleGAN-lite): one image per crossover layer",
    )

    verify = commands.add_parser(
        "verify",
        help="check the signed content credentials (C2PA) of images and model files (exit 0: "
        "every file Trusted, 1: some not, 2: some not readable)",
        description="PNG and JPEG files carry their manifest inside; a model file is checked "
        "against <file>.c2pa beside it. Verdicts: Trusted, Valid but untrusted, Invalid "
        "(tampered), No credentials (then the unsigned IPTC label and watermark are shown, "
        "which prove nothing).",
    )
    verify.add_argument("files", type=Path, nargs="+", metavar="FILE")
    verify.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify.add_argument(
        "--trust-anchor",
        action="append",
        type=Path,
        default=[],
        metavar="PEM",
        help="also trust this root certificate (someone's root.pem); repeatable. Trusted "
        "already: your own root and the files in GENLAB_TRUST_ANCHORS",
    )
    verify.add_argument(
        "--allow-untrusted",
        action="store_true",
        help="exit 0 when every signature is valid, even by signers you do not trust",
    )

    keys = commands.add_parser("keys", help="the signing identity that signs images and models")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    init = actions.add_parser("init", help="create a local root CA and a signing certificate")
    show = actions.add_parser("show", help="print the identity and its trust anchor fingerprint")
    for action in (init, show):
        action.add_argument(
            "--dir",
            type=Path,
            help="the keys folder (default: GENLAB_KEYS_DIR, else ~/.config/genlab/keys)",
        )
    init.add_argument(
        "--force",
        action="store_true",
        help="replace an existing identity (the old one is kept aside)",
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of text")

    runs = commands.add_parser(
        "runs",
        help="every run of a workspace in one table: dvc repro runs, DVC experiments, "
        "multirun jobs and Optuna trials",
    )
    runs.add_argument(
        "--workspace", type=Path, default=Path("."), help="the project folder (default: .)"
    )
    runs.add_argument(
        "--sort",
        type=_runs_argument("parse_sort"),
        metavar="KEY",
        help="order by a column (kid_mean, fid, isc_mean, objective, steps, images_per_s, "
        "status, origin, name, ...; ascending, rows without a value last)",
    )
    runs.add_argument("--desc", action="store_true", help="sort in descending order")
    runs.add_argument(
        "--filter",
        type=_runs_argument("parse_filter"),
        action="append",
        default=[],
        metavar="EXPR",
        help="keep the rows that match (repeatable, all must match): status=failed, "
        "origin=optuna, model=dcgan, kid_mean<0.05, fid<=40, params.model.optim.lr>1e-4",
    )
    runs.add_argument("--json", action="store_true", help="print the rows as JSON")
    runs.add_argument(
        "--no-experiments", action="store_true", help="leave DVC experiments out (faster)"
    )
    runs.add_argument(
        "--sweeps",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help=f"also look for sweeps in DIR (a sweep folder, or one holding sweeps): a sweep "
        f"run with hydra.sweep.dir outside {MULTIRUN_DIR}/; repeatable",
    )
    runs.add_argument(
        "--html",
        type=Path,
        nargs="?",
        const=_RUNS_PAGE_IN_WORKSPACE,
        metavar="PATH",
        help=f"also write the page of these runs (default: <workspace>/{RUNS_PAGE})",
    )
    return parser


def _runs_argument(name: str) -> Callable[[str], object]:
    """An argparse type from genlab.reporting.runs (imported when used): ValueError becomes
    argparse's usage error (exit 2, one line)."""

    def parse(text: str) -> object:
        from genlab.reporting import runs

        try:
            return getattr(runs, name)(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = name.removeprefix("parse_")  # what argparse names in its message
    return parse


def _generate(args: argparse.Namespace) -> int:
    """Each seed is generated and written in turn (one image in memory, plus the uint8 grid
    when --grid asks for one); every grid's size is checked on its first image. Every PNG made
    by one class records it (class, class_index)."""
    generator = ExportedGenerator.load(args.model, trust_torchscript=args.trust_torchscript)
    if args.list_classes:
        print(_class_listing(generator))
        return EXIT_OK
    label = None if args.class_ is None else generator.class_index(args.class_)
    if args.per_class is not None:
        generator.require_classes("--per-class")
        if args.seeds is not None:
            raise GenerateError(
                "--per-class N writes seeds 0..N-1 of every class: leave --seeds out"
            )
        _check_image_count(args.per_class * (1 if label is not None else generator.num_classes))
    if args.psi is not None:
        generator.require_styles("--psi")
    if args.mix:
        generator.require_styles("--mix")
    out: Path = args.out if args.out is not None else default_out(args.model)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if args.per_class is not None:
        classes = range(generator.num_classes) if label is None else [label]
        for index in classes:
            folder = out / class_folder(index, generator.class_names[index], generator.num_classes)
            folder.mkdir(exist_ok=True)
            seeds = list(range(args.per_class))
            written += _write_seeds(args, generator, folder, seeds, [index] * len(seeds))
    else:
        seeds = args.seeds if args.seeds is not None else parse_seeds(DEFAULT_SEEDS)
        written += _write_seeds(
            args, generator, out, seeds, generator.default_labels(len(seeds), label)
        )
    written += _write_paths(args, generator, out, label)
    print(f"genlab generate: wrote {len(written)} PNG files to {out}")
    return EXIT_OK


def _class_listing(generator: ExportedGenerator) -> str:
    """--list-classes: ``<index>\t<name>`` per class (names escaped: they come from a file)."""
    names = generator.class_names
    if not names:
        return f"{generator.source.name} is unconditional: it has no classes"
    return "\n".join(f"{index}\t{printable(name, 100)}" for index, name in enumerate(names))


def _check_image_count(count: int) -> None:
    if count > MAX_SEEDS:
        raise GenerateError(
            f"--per-class asks for {count} images, at most {MAX_SEEDS} per call: ask for "
            "fewer per class, or one --class at a time"
        )


def _write_seeds(
    args: argparse.Namespace,
    generator: ExportedGenerator,
    out: Path,
    seeds: list[int],
    labels: list[int | None],
) -> list[Path]:
    """seed_<seed>.png per seed (and grid.png with --grid: balanced classes one per column)."""
    from genlab.generate import Grid
    from genlab.provenance import save_png

    psi_note = {} if args.psi is None else {"truncation_psi": str(args.psi)}
    written = []
    grid: Grid | None = None
    one_class = len(set(labels)) == 1 and labels[0] is not None
    nrow = None if one_class or labels[0] is None else min(generator.num_classes, len(seeds))
    images = generator.images(seeds, psi=args.psi, labels=labels)
    for seed, label, image in zip(seeds, labels, images, strict=True):
        if args.grid:
            grid = grid or Grid(len(seeds), image.shape, "--grid", nrow)
            grid.add(image)
        provenance = generator.provenance(
            seed=str(seed), **generator.class_provenance(label), **psi_note
        )
        written.append(save_png(image, out / f"seed_{seed:06d}.png", provenance))
    if grid is not None:
        note = generator.class_provenance(labels[0]) if one_class else {}
        if nrow is not None:
            note = {"classes": "balanced: seed i of the list has class i mod num_classes"}
        provenance = generator.provenance(seeds=",".join(map(str, seeds)), **note)
        written.append(save_png(grid.array, out / "grid.png", provenance))
    return written


def _write_paths(
    args: argparse.Namespace, generator: ExportedGenerator, out: Path, label: int | None
) -> list[Path]:
    """--interpolate and --mix: the class stays fixed along each strip; a conditional export
    without --class writes one strip per class, a row each."""
    from genlab.generate import tiled
    from genlab.provenance import save_png

    rows: list[int | None] = (
        [label]
        if label is not None or not generator.num_classes
        else list(range(generator.num_classes))
    )
    note = (
        generator.class_provenance(label)
        if len(rows) == 1
        else {"classes": "one row per class, 0..num_classes-1"}
    )
    written = []
    if args.interpolate:
        a, b = args.interpolate
        strips = (image for row in rows for image in generator.interpolate(a, b, args.steps, row))
        strip = tiled(strips, args.steps * len(rows), "--interpolate", args.steps)
        provenance = generator.provenance(interpolation=f"slerp seed {a} -> seed {b}", **note)
        written.append(save_png(strip, out / f"interpolation_{a}_{b}.png", provenance))
    if args.mix:
        a, b = args.mix
        count = generator.mix_count
        strips = (image for row in rows for image in generator.mix(a, b, psi=args.psi, label=row))
        mixed = tiled(strips, count * len(rows), "--mix", count)
        provenance = generator.provenance(
            style_mixing=f"image k: first k styles from seed {a}, the rest from seed {b}", **note
        )
        written.append(save_png(mixed, out / f"mix_{a}_{b}.png", provenance))
    return written


def _verify(args: argparse.Namespace) -> int:
    """Exit 0: every file Trusted (or, with --allow-untrusted, at least Valid); 1: some not
    (an unsigned label or watermark never counts); 2: some files are not readable at all (one
    line each on stderr; the readable ones are still reported)."""
    from genlab.credentials import trust_anchors
    from genlab.verify import describe, passes, verify_file

    anchors = trust_anchors(args.trust_anchor)
    reports = [verify_file(path, anchors) for path in args.files]
    bad = [report for report in reports if "error" in report]
    good = [report for report in reports if "error" not in report]
    for report in bad:
        print(
            f"genlab verify: {printable(report['path'], 1000)} {report['error']}", file=sys.stderr
        )
    if args.json:
        print(json.dumps(good, indent=2))
    elif good:
        print("\n".join(describe(report) for report in good))
    if bad:
        return EXIT_BAD_INPUT
    verified = all(passes(report, args.allow_untrusted) for report in good)
    return EXIT_OK if verified else EXIT_NOT_VERIFIED


def _keys(args: argparse.Namespace) -> int:
    """`keys init` creates the identity and says what to share; `keys show` prints it (the
    fingerprint model cards tell people to trust). Neither prints anything secret."""
    from genlab import credentials
    from genlab.layout import ROOT_CERT_FILE

    if args.keys_command == "init":
        identity = credentials.init_keys(args.dir, force=args.force)
        folder = Path(identity.source)
        print(f"genlab keys: created a signing identity in {folder}")
        print(f"  trust anchor fingerprint: {identity.fingerprint}")
        print(
            f"  share {folder / ROOT_CERT_FILE} (public) with whoever verifies your images and "
            "models: `genlab verify --trust-anchor root.pem FILE`, or GENLAB_TRUST_ANCHORS"
        )
        print("  keep the .key files private (0600); never commit them")
        if os.environ.get(credentials.SIGNING_CERT_ENV):
            print(
                f"  note: {credentials.SIGNING_CERT_ENV} is set, so genlab signs with that "
                "certificate, not with these keys"
            )
        return EXIT_OK
    identity = credentials.load_identity(args.dir, create=False)
    described = identity.describe()
    if args.json:
        print(json.dumps(described, indent=2))
        return EXIT_OK
    print(f"genlab signing identity ({described['source']})")
    labels = {
        "trust_anchor_fingerprint": "trust anchor fingerprint",
        "trust_anchor_subject": "trust anchor",
        "signer_subject": "signer",
        "signer_fingerprint": "signer fingerprint",
        "signer_valid_until": "signer valid until",
    }
    for key, label in labels.items():
        print(f"  {label}: {described[key]}")
    folder = Path(described["source"])
    if (folder / ROOT_CERT_FILE).is_file():
        print(f"  share: {folder / ROOT_CERT_FILE}")
    else:
        print("  share: the last certificate of the chain (the root) with whoever verifies")
    return EXIT_OK


def _runs(args: argparse.Namespace) -> int:
    """The table (or JSON) of every run in the workspace; exit 0, also when there is none."""
    from genlab.reporting.runs import collect_runs, filter_rows, sort_rows

    def warn(message: str) -> None:
        print(f"genlab runs: warning: {message}", file=sys.stderr)

    workspace: Path = args.workspace
    if not workspace.is_dir():
        print(f"genlab runs: {printable(str(workspace), 1000)} is not a folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    for folder in args.sweeps:
        if not folder.is_dir():
            print(
                f"genlab runs: --sweeps {printable(str(folder), 1000)} is not a folder",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
    every = collect_runs(
        workspace, experiments=not args.no_experiments, warn=warn, sweeps=args.sweeps
    )
    rows = filter_rows(every, args.filter)
    if args.sort:
        rows = sort_rows(rows, args.sort, descending=args.desc)
    if args.html is not None:
        from genlab.reporting.runs_page import write_runs_page

        page = workspace / RUNS_PAGE if args.html is _RUNS_PAGE_IN_WORKSPACE else args.html
        try:
            written = write_runs_page(rows, page)
        except OutputPathError as error:  # not a runs page: the user's own file, left alone
            print(f"genlab runs: {error}", file=sys.stderr)
            return error.exit_code
        except OSError as error:
            print(f"genlab runs: cannot write {page}: {error.strerror or error}", file=sys.stderr)
            return EXIT_FAILED
        print(f"genlab runs: wrote {written}", file=sys.stderr if args.json else sys.stdout)
    try:
        _print_runs(args, rows, every, workspace)
    except BrokenPipeError:  # `genlab runs | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
    return EXIT_OK


def _print_runs(args: argparse.Namespace, rows: list, every: list, workspace: Path) -> None:
    from genlab.reporting.runs import format_table, rows_json

    if args.json:
        print(json.dumps(rows_json(rows), indent=2))
    elif rows:
        print(format_table(rows))
    elif every:
        print(f"genlab runs: none of the {len(every)} runs in {workspace} match the filters")
    else:
        print(
            f"genlab runs: no runs in {workspace} (no runs/<run>, DVC experiments or "
            f"{MULTIRUN_DIR}/ sweeps yet; a sweep folder elsewhere: --sweeps DIR)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    commands = {"generate": _generate, "verify": _verify, "keys": _keys, "runs": _runs}
    try:
        return commands[args.command](args)
    except (GenerateError, CredentialsError) as error:
        print(f"genlab {args.command}: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
