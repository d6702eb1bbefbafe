"""Evaluation time: genlab's FID / IS / KID against calling torch-fidelity directly on the same
samples, what the cached reference statistics save on a second evaluation, and what precision /
recall / density / coverage, the bootstrap intervals and the sample-count curve add to an
evaluation (the model's samples and the real-vs-real floor, as the evaluate stage scores them).

Run: `python benchmarks/evaluation.py` (needs `dvc repro train_classifier` first; ~1 min).
"""

from __future__ import annotations

import tempfile
import time

import torch
from _common import ROOT, compose, data_dir, machine, table


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main() -> None:
    import torch_fidelity

    import genlab.evaluation.feature_extractors  # noqa: F401 - registers "genlab-classifier"
    from genlab.data.store import read_split
    from genlab.evaluation.fidelity import ImageTensorDataset, compute_fidelity

    weights = ROOT / "models/classifier/digits.pt"
    if not weights.is_file():
        raise SystemExit(f"{weights} not found: run `dvc repro train_classifier` first")
    test = torch.from_numpy(read_split(data_dir(), "test").images)
    samples = torch.randint(
        0,
        256,
        (1000, *test.shape[1:]),
        dtype=torch.uint8,
        generator=torch.Generator().manual_seed(0),
    )
    settings = dict(kid_subset_size=360, kid_subsets=100, batch_size=100)

    def direct():
        return torch_fidelity.calculate_metrics(
            input1=ImageTensorDataset(samples),
            input2=ImageTensorDataset(test),
            cuda=False,
            isc=True,
            fid=True,
            kid=True,
            isc_splits=10,
            feature_extractor="genlab-classifier",
            feature_extractor_weights_path=str(weights),
            verbose=False,
            kid_subset_size=settings["kid_subset_size"],
            kid_subsets=settings["kid_subsets"],
            batch_size=settings["batch_size"],
        )

    with tempfile.TemporaryDirectory() as cache:

        def ours():
            return compute_fidelity(
                samples,
                test,
                extractor="classifier",
                weights_path=weights,
                cache_dir=cache,
                reference_cache_name="benchmark",
                **settings,
            )

        direct()  # warm-up: imports and the first extractor load
        direct_s, direct_scores = timed(direct)
        cold_s, cold = timed(ours)
        warm_s, warm = timed(ours)
    assert abs(cold["fid"] - direct_scores["frechet_inception_distance"]) < 1e-6 * max(
        1, cold["fid"]
    )
    assert abs(warm["fid"] - cold["fid"]) < 1e-6 * max(1, cold["fid"])
    print(f"Machine: {machine()}")
    print("1000 samples vs 360 test images, classifier extractor, FID + IS + KID (100 subsets)\n")
    print(
        table(
            ["call", "seconds", "vs direct"],
            [
                ["torch-fidelity directly", f"{direct_s:.2f}", "1.00x"],
                [
                    "genlab compute_fidelity, cold cache",
                    f"{cold_s:.2f}",
                    f"{cold_s / direct_s:.2f}x",
                ],
                [
                    "genlab compute_fidelity, cached reference",
                    f"{warm_s:.2f}",
                    f"{warm_s / direct_s:.2f}x",
                ],
            ],
        )
    )
    print(f"\nSame FID from both paths: {cold['fid']:.6g}")
    print_added_cost(samples, test, weights, settings)


def print_added_cost(samples, test, weights, settings) -> None:
    """Today's evaluation (FID / IS / KID of the samples and of the floor) against the same
    with each extra the evaluate stage now computes from the same features."""
    from genlab.data.store import read_split
    from genlab.evaluation.fidelity import compute_fidelity
    from genlab.evaluation.settings import real_sample

    config = compose()
    evaluate = config.evaluate
    train = read_split(data_dir(), "train").images  # the floor: as many as the samples
    train = torch.from_numpy(real_sample(train, len(samples), evaluate.sample_seed))
    extras = {
        "FID / IS / KID only (before issue 18)": {},
        "+ precision / recall / density / coverage": dict(nearest_k=evaluate.nearest_k),
        f"+ {evaluate.bootstrap.rounds} bootstrap rounds": dict(
            nearest_k=evaluate.nearest_k,
            bootstrap_rounds=evaluate.bootstrap.rounds,
            bootstrap_level=evaluate.bootstrap.level,
        ),
        f"+ sample-count curve {list(evaluate.sample_counts)} and FID_inf": dict(
            nearest_k=evaluate.nearest_k,
            bootstrap_rounds=evaluate.bootstrap.rounds,
            bootstrap_level=evaluate.bootstrap.level,
            sample_counts=tuple(evaluate.sample_counts),
            sample_count_draws=evaluate.sample_count_draws,
        ),
    }
    rows, base = [], None
    with tempfile.TemporaryDirectory() as cache:
        for label, options in extras.items():

            def evaluation(options=options):
                common = dict(
                    extractor="classifier",
                    weights_path=weights,
                    cache_dir=cache,
                    reference_cache_name="benchmark",
                    **settings,
                    **options,
                )
                compute_fidelity(samples, test, **common)  # the model's samples
                compute_fidelity(train, test, **common)  # the real-vs-real floor

            evaluation()  # warm-up: the reference cache and first imports
            seconds = min(timed(evaluation)[0] for _ in range(3))
            base = base or seconds
            rows.append([label, f"{seconds:.2f}", f"{(seconds / base - 1):+.0%}"])
    print(
        f"\nAdded cost of the extra scores: {len(samples)} samples and the floor "
        f"({len(train)} real train images) against {len(test)} test images, best of 3\n"
    )
    print(table(["evaluation (samples + floor)", "seconds", "vs FID / IS / KID only"], rows))
    print_stage_time()


def print_stage_time(model: str = "dcgan") -> None:
    """The whole evaluate stage (sampling, the untrained baseline, memorization, imports) on the
    default run's generator, without and with the bootstrap and the sample-count curve."""
    import os
    import subprocess
    import sys

    from genlab.layout import RUNS_DIR, RunLayout, run_name

    run = run_name(model, 0)  # the default run of the model (seed 0)
    if not RunLayout.at(ROOT / RUNS_DIR / run).generator.is_file():
        print(
            f"\n(no {RUNS_DIR}/{run}/generator.safetensors: run `dvc repro` for the stage timing)"
        )
        return
    variants = {
        "FID / IS / KID + precision / recall / density / coverage": [
            "evaluate.bootstrap.rounds=0",
            "evaluate.sample_counts=[]",
        ],
        "+ bootstrap intervals, sample-count curve, FID_inf (default)": [],
    }
    rows, base = [], None
    env = {**os.environ, "GENLAB_OUTPUTS_OUTSIDE_PROJECT": "true"}
    with tempfile.TemporaryDirectory() as metrics:
        for label, overrides in variants.items():
            command = [
                sys.executable,
                str(ROOT / "pipelines/evaluate.py"),
                f"model={model}",
                "logger=csv",
                f"paths.metrics_dir={metrics}",
                *overrides,
            ]

            def evaluate(command=command):
                subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)

            seconds = min(timed(evaluate)[0] for _ in range(2))
            base = base or seconds
            rows.append([label, f"{seconds:.2f}", f"{(seconds / base - 1):+.0%}"])
    print(f"\nThe evaluate stage on {RUNS_DIR}/{run} (wall time, best of 2, imports included)\n")
    print(table(["evaluate stage", "seconds", "vs first row"], rows))


if __name__ == "__main__":
    main()
