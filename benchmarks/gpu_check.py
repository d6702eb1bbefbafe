"""GPU check: every GPU path of genlab in one run, on a machine without network.

`benchmarks/gpu_check.sh OUT_DIR` installs the wheels of `make gpu-wheels` and runs this; see
docs/benchmarks.md ("GPU check"). Steps: environment, fetch (digits, offline), the domain
classifier, a short training of each model in fp32, bf16-mixed and bf16-mixed with
torch.compile, a 1-GPU DDP run (nccl), an evaluate of the fp32 DCGAN, and the throughput
benchmark against the plain PyTorch loop. Each step runs as its own process with a timeout
inside one time budget; a failed step is recorded and the next one runs. OUT_DIR receives
`gpu_check.md`, `gpu_check.json` and `gpu_check_logs.tar.gz` (one log per step).

`--dry-run`: the same steps on the CPU with a few steps each (gloo for DDP), where every
package that is neither on the GPU machine nor in the wheel folder is blocked from import, so
the run proves the wheel list is complete (~2-4 min on 2 cores).

Standard library only: it must start on the GPU machine before anything is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MAX_WHEELS_BYTES = 64 * 1024 * 1024  # what travels to the GPU machine besides the working tree
BUDGET_S = 420.0  # the steps' share of the 8 minutes (the wheel install and start-up take the rest)
DRY_RUN_BUDGET_S = 900.0  # 2 shared cores: ~3.5-5.5 min seen; the budget only guards a hang
MODELS = ("dcgan", "vae", "stylegan")

# genlab's dependencies that the check's steps import and the GPU machine lacks (checked by
# the dry run, which blocks everything else that is not on GPU_PREINSTALLED). Versions come
# from constraints.txt. W&B and DVC stay out: the check logs to CSV and runs no DVC command.
WHEELS = (
    "hydra-core",
    "omegaconf",
    "antlr4-python3-runtime",  # omegaconf's parser; an sdist only: built here as a wheel
    "torch-fidelity",  # FID / KID / IS in evaluate
    "invisible-watermark",  # every written image is watermarked (genlab.watermark)
    "PyWavelets",  # invisible-watermark's DWT
    "c2pa-python",  # every written image is signed (genlab.credentials)
    "cryptography",  # the throwaway signing identity
    "cffi",  # cryptography's bindings
    "pycparser",  # cffi's
)
SDIST_ONLY = ("antlr4-python3-runtime",)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# The GPU machine's python3 (3.12, torch 2.11), as its image listed them (2026-11-17).
GPU_PREINSTALLED = frozenset(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
    botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
    coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
    diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
    frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
    hypothesis idna imageio iniconfig interface-meta jax jaxlib jaxtyping jinja2 joblib
    kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml
    markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
    multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda
    numpy numpyro nvidia-ml-py onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax
    opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
    pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
    py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark
    pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml
    regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy
    seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
    sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore
    threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq
    torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
    typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray
    xxhash yarl zipp""".split()
)
# The same modules under another distribution name here: opencv-python's cv2 is the headless
# one's there; pytorch-lightning there ships lightning_fabric inside it.
SAME_MODULES = {"opencv-python": "opencv-python-headless", "lightning-fabric": "pytorch-lightning"}
BLOCK_ENV = "GENLAB_GPU_CHECK_BLOCKED"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- the wheel folder -------------------------------------------------------------------------


def prepare_wheels(folder: Path) -> list[tuple[str, int]]:
    """Download WHEELS for CPython 3.12 manylinux x86_64 (pinned by constraints.txt), build the
    sdist-only ones and genlab itself, and refuse a folder over MAX_WHEELS_BYTES."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):
        old.unlink()
    pip = [sys.executable, "-m", "pip"]
    pins = ["-c", str(ROOT / "constraints.txt"), "--no-deps"]
    binary = [name for name in WHEELS if name not in SDIST_ONLY]
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    target = ["--python-version", "3.12", "--implementation", "cp", *platforms]
    only_binary = ["--only-binary=:all:", "-d", str(folder)]
    subprocess.run([*pip, "download", *pins, *target, *only_binary, *binary], check=True)
    subprocess.run([*pip, "wheel", *pins, "-w", str(folder), *SDIST_ONLY], check=True)
    with tempfile.TemporaryDirectory() as source:  # setuptools leaves build/ in the tree
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, Path(source) / name)
        skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
        shutil.copytree(ROOT / "src", Path(source) / "src", ignore=skip)
        subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder), source], check=True)
    check_wheels(folder)
    return [(path.name, path.stat().st_size) for path in sorted(folder.glob("*.whl"))]


def check_wheels(folder: Path) -> None:
    """Exit with a message naming what is wrong unless ``folder`` holds exactly one wheel of
    each of WHEELS and genlab, no torch or nvidia wheel, within MAX_WHEELS_BYTES."""
    remedy = (
        "run `make gpu-wheels` on a machine with PyPI and carry the folder (docs/benchmarks.md)"
    )
    if not folder.is_dir():
        sys.exit(f"gpu_check: wheel folder {folder} not found: {remedy}")
    wheels = sorted(folder.glob("*.whl"))
    found: dict[str, list[str]] = {}
    for wheel in wheels:
        found.setdefault(canonical(wheel.name.split("-")[0]), []).append(wheel.name)
    problems = [f"no wheel of {n}" for n in (*WHEELS, "genlab") if canonical(n) not in found]
    problems += [f"several versions: {', '.join(v)}" for v in found.values() if len(v) > 1]
    heavy = [n for n in found if n == "torch" or n.startswith("nvidia")]
    problems += [f"{n} must not travel: the GPU machine has its own" for n in heavy]
    size = sum(wheel.stat().st_size for wheel in wheels)
    if size > MAX_WHEELS_BYTES:
        problems.append(f"{size / 2**20:.1f} MiB, over the {MAX_WHEELS_BYTES // 2**20} MiB limit")
    if problems:
        sys.exit(f"gpu_check: wheel folder {folder}: {'; '.join(problems)}: {remedy}")


# -- the dry run's import blocker -------------------------------------------------------------

SITECUSTOMIZE = f'''"""gpu_check --dry-run: refuse what the GPU machine would not have."""
import os
import sys

_BLOCKED = frozenset(filter(None, os.environ.get("{BLOCK_ENV}", "").split(",")))


class _NotOnGpuMachine:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(
                f"No module named {{name!r}} (not on the GPU machine, not in the wheel folder)",
                name=name,
            )
        return None


sys.meta_path.insert(0, _NotOnGpuMachine())
'''


def blocked_modules() -> list[str]:
    """Top-level modules importable here that only distributions absent from the GPU machine
    and from WHEELS provide."""
    from importlib.metadata import packages_distributions

    allowed = GPU_PREINSTALLED | {canonical(n) for n in (*WHEELS, "genlab")}
    blocked = []
    for module, dists in packages_distributions().items():
        names = {canonical(SAME_MODULES.get(canonical(d), d)) for d in dists}
        if module.isidentifier() and not names & allowed:
            blocked.append(module)
    return sorted(blocked)


# -- the steps --------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    command: list[str]
    timeout_s: float
    figures: Callable[[str], dict[str, Any]] = lambda log: {}


def slug(name: str) -> str:
    """A step's name as a file name (no spaces: Hydra overrides hold paths)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def layout() -> Any:
    """genlab's file names (imported when a figure is read: the wheels are installed by then)."""
    from genlab import layout as genlab_layout

    return genlab_layout


def train_figures(run_dir: Path, backend: str | None = None) -> Callable[[str], dict[str, Any]]:
    """A training step's figures from its train_summary.json; with ``backend``, the DDP
    process group Lightning reported must be that one."""

    def figures(log: str) -> dict[str, Any]:
        summary = read_json(run_dir / layout().TRAIN_SUMMARY_FILE)
        found = {k: summary.get(k) for k in ("steps", "images_per_s", "training_loop_s")}
        if backend is not None:
            reported = re.search(r"distributed_backend=(\w+)", log)
            found["world_size"] = summary.get("world_size")
            found["replica_max_abs_diff"] = summary.get("replica_max_abs_diff")
            found["backend"] = reported.group(1) if reported else None
            if found["backend"] != backend:
                raise ValueError(f"process group {found['backend']}, expected {backend}")
        return found

    return figures


def build_steps(work: Path, dry_run: bool) -> list[Step]:
    """The check, most important first: the budget guard skips what no longer fits."""
    python = sys.executable
    steps_n, batch = (3, 16) if dry_run else (200, 64)
    trainer = ["trainer=cpu"] if dry_run else ["trainer=gpu"]
    classifier = work / "classifier.pt"
    paths = [
        f"paths.data_dir={work / 'data'}",
        f"paths.metrics_dir={work / 'metrics'}",
        f"paths.export_dir={work / 'export'}",
        f"paths.classifier={classifier}",
        f"paths.cache_dir={work / 'cache'}",
        "data=digits",
        "logger=csv",
    ]

    def stage(script: str, name: str, *overrides: str) -> list[str]:
        hydra_dir = f"hydra.run.dir={work / 'hydra' / slug(name)}"
        return [python, str(ROOT / "pipelines" / script), *paths, hydra_dir, *overrides]

    def train(name: str, model: str, *overrides: str, timeout: float, ddp: bool = False) -> Step:
        run_dir = work / "runs" / slug(name)
        command = stage(
            "train.py",
            name,
            f"model={model}",
            f"paths.run_dir={run_dir}",
            f"train.steps={steps_n}",
            f"data.batch_size={batch}",
            *overrides,
        )
        backend = ("gloo" if dry_run else "nccl") if ddp else None
        return Step(name, command, timeout, train_figures(run_dir, backend))

    environment = work / "environment.json"
    steps = [
        Step(
            "environment",
            [python, str(Path(__file__)), "environment", str(environment)]
            + ([] if dry_run else ["--require-cuda"]),
            60,
            lambda log: read_json(environment),
        ),
        Step(
            "fetch digits",
            stage("fetch.py", "fetch"),
            120,
            lambda log: read_json(work / "data/digits" / layout().DATA_META_FILE)["counts"],
        ),
        Step(
            "train classifier",
            stage("train_classifier.py", "classifier", "metrics=classifier")
            + (["metrics.classifier.epochs=1"] if dry_run else []),
            120,
            lambda log: {
                "test_accuracy": read_json(layout().classifier_report(classifier))["test_accuracy"]
            },
        ),
    ]
    steps += [train(f"{m} fp32", m, *trainer, timeout=90) for m in MODELS]
    bf16 = "trainer.precision=bf16-mixed"
    steps += [train(f"{m} bf16-mixed", m, *trainer, bf16, timeout=90) for m in MODELS]
    accelerator = "cpu" if dry_run else "gpu"
    steps.append(
        train(
            "dcgan ddp 1 device",
            "dcgan",
            "trainer=ddp",
            "trainer.devices=1",
            f"trainer.accelerator={accelerator}",
            timeout=120,
            ddp=True,
        )
    )
    evaluate = [
        "model=dcgan",
        f"paths.run_dir={work / 'runs' / slug('dcgan fp32')}",
        "metrics=classifier",
        *(
            [
                "evaluate.num_samples=100",
                "evaluate.kid_subset_size=50",
                "evaluate.kid_subsets=10",
                "evaluate.sample_counts=[50,100]",
                "evaluate.sample_count_draws=2",
                "evaluate.bootstrap.rounds=5",
                "evaluate.memorization.pairs=4",
            ]
            if dry_run
            else ["evaluate.bootstrap.rounds=50", "evaluate.sample_counts=[500,1000]"]
        ),
    ]
    steps.append(
        Step(
            "evaluate dcgan",
            stage("evaluate.py", "evaluate", *evaluate),
            180,
            lambda log: {
                k: read_json(
                    layout().metrics_file(work / "metrics", layout().run_name("dcgan", 0))
                ).get(k)
                for k in ("fid", "kid_mean")
            },
        )
    )
    throughput = ROOT / "benchmarks/throughput.py"
    for precision in ("32-true", "bf16-mixed"):
        figures_file = work / f"throughput-{precision}.json"
        command = [
            python,
            str(throughput),
            f"--data-dir={work / 'data' / 'digits'}",
            f"--accelerator={accelerator}",
            f"--precision={precision}",
            f"--steps={steps_n}",
            "--models",
            "dcgan",
            "stylegan",
            f"--json={figures_file}",
        ]
        figures = throughput_figures(figures_file)
        steps.append(Step(f"throughput {precision}", command, 150, figures))
    compile_ = ["train.speed.compile=true"]
    # Compiling costs 15-50 s a model on a CPU: the dry run compiles the one whose regularized
    # discriminator must stay eager (tests/unit/test_speed.py compiles and trains the DCGAN).
    compiled = ("stylegan",) if dry_run else MODELS
    steps += [
        train(f"{m} bf16-mixed compile", m, *trainer, bf16, *compile_, timeout=180)
        for m in compiled
    ]
    return steps


def throughput_figures(path: Path) -> Callable[[str], dict[str, Any]]:
    def figures(log: str) -> dict[str, Any]:
        found = {}
        for model, row in read_json(path).items():
            found[f"{model}_plain_img_s"] = round(row["plain"], 1)
            found[f"{model}_genlab_img_s"] = round(row["genlab"], 1)
            found[f"{model}_ratio"] = round(row["ratio"], 3)
        return found

    return figures


def run_step(step: Step, env: dict[str, str], logs: Path, timeout: float) -> dict[str, Any]:
    """Run one step in its own process group (DDP and compile start children), killed as a
    group at its timeout; the figures are read only from a step that exited 0."""
    log_path = logs / f"{slug(step.name)}.log"
    started = time.perf_counter()
    with log_path.open("w") as log:
        log.write("$ " + " ".join(step.command) + "\n")
        log.flush()
        process = subprocess.Popen(
            step.command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=timeout)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            stop_group(process)
            status = f"timeout ({timeout:.0f} s)"
        except BaseException:  # Ctrl-C or SIGTERM of the check: no step left running
            stop_group(process)
            raise
    wall = time.perf_counter() - started
    text = log_path.read_text(errors="replace")
    figures: dict[str, Any] = {}
    if status == "ok":
        try:
            figures = step.figures(text)
        except (OSError, ValueError, KeyError, TypeError) as error:
            status = f"failed ({type(error).__name__}: {error})"
    elif (last := [line for line in text.splitlines() if line.strip()][-1:]) and last:
        figures = {"last_line": last[0][-200:]}
    return {"step": step.name, "status": status, "wall_s": round(wall, 1), "figures": figures}


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the step's process group, SIGKILL it 15 s later if it is still there."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def render_table(results: list[dict[str, Any]], header: str) -> str:
    lines = [header, "", "| step | status | wall s | figures |", "|---|---|---|---|"]
    for row in results:
        figures = "; ".join(f"{k}={v}" for k, v in row["figures"].items())
        lines.append(f"| {row['step']} | {row['status']} | {row['wall_s']} | {figures} |")
    return "\n".join(lines) + "\n"


def run_check(out: Path, dry_run: bool, budget_s: float, work: Path | None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="genlab-gpu-check-")) if work is None else work
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GENLAB_OUTPUTS_OUTSIDE_PROJECT": "true",  # every output goes to the work folder
        "GENLAB_KEYS_DIR": str(work / "keys"),  # a throwaway signing identity
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "DVC_NO_ANALYTICS": "1",
        "HYDRA_FULL_ERROR": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if dry_run:
        blocker = work / "blocker"
        blocker.mkdir(exist_ok=True)
        (blocker / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env[BLOCK_ENV] = ",".join(blocked_modules())
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocker), env.get("PYTHONPATH")]))
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # -> finally
    try:
        deadline = time.monotonic() + budget_s
        results = []
        started = time.perf_counter()
        for step in build_steps(work, dry_run):
            left = deadline - time.monotonic()
            if left < 20:
                skipped = "skipped (time budget)"
                results.append({"step": step.name, "status": skipped, "wall_s": 0, "figures": {}})
            else:
                slack = 2 if dry_run else 1  # a CPU shared with other work
                results.append(run_step(step, env, logs, min(step.timeout_s * slack, left)))
            print(f"gpu_check: {results[-1]['step']}: {results[-1]['status']}", flush=True)
        total = time.perf_counter() - started
        mode = "dry run on CPU" if dry_run else "GPU"
        header = f"# genlab GPU check ({mode}): {total:.0f} s for the steps"
        (out / "gpu_check.md").write_text(render_table(results, header))
        record = {"mode": mode, "total_s": round(total, 1), "budget_s": budget_s, "steps": results}
        (out / "gpu_check.json").write_text(json.dumps(record, indent=2) + "\n")
        with tarfile.open(out / "gpu_check_logs.tar.gz", "w:gz") as archive:
            archive.add(logs, arcname="logs")
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    print(render_table(results, header))
    return 0 if all(row["status"] == "ok" for row in results) else 1


def environment(path: Path, require_cuda: bool) -> None:
    """What the check ran on; with ``require_cuda``, fail when torch sees no GPU."""
    import platform
    from importlib.metadata import version

    import torch

    found: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": version("pytorch-lightning"),
        "hydra": version("hydra-core"),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name(0)
        found["bf16"] = torch.cuda.is_bf16_supported()
    path.write_text(json.dumps(found))
    print(json.dumps(found))
    if require_cuda and not found["cuda"]:
        sys.exit("torch sees no CUDA device")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the check and write the table into OUT")
    run.add_argument("out", type=Path)
    run.add_argument("--dry-run", action="store_true")
    run.add_argument(
        "--budget-s", type=float, help=f"default {BUDGET_S:.0f} ({DRY_RUN_BUDGET_S:.0f} dry)"
    )
    run.add_argument("--work", type=Path, help="keep the runs here (default: a temporary one)")
    wheels = commands.add_parser("wheels", help="prepare the wheel folder (make gpu-wheels)")
    wheels.add_argument("folder", type=Path)
    check = commands.add_parser("check-wheels", help="is the wheel folder complete?")
    check.add_argument("folder", type=Path)
    env = commands.add_parser("environment")
    env.add_argument("path", type=Path)
    env.add_argument("--require-cuda", action="store_true")
    args = parser.parse_args()
    if args.command == "run":
        budget = args.budget_s or (DRY_RUN_BUDGET_S if args.dry_run else BUDGET_S)
        return run_check(args.out, args.dry_run, budget, args.work)
    if args.command == "wheels":
        listing = prepare_wheels(args.folder)
        for name, size in listing:
            print(f"{size / 2**20:8.2f} MiB  {name}")
        print(f"{sum(size for _, size in listing) / 2**20:8.2f} MiB  in {args.folder}")
    elif args.command == "check-wheels":
        check_wheels(args.folder)
    else:
        environment(args.path, args.require_cuda)
    return 0


if __name__ == "__main__":
    sys.exit(main())
