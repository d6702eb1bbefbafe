"""Evaluation time: genlab's FID / IS / KID against calling torch-fidelity directly on the same
samples, and what the cached reference statistics save on a second evaluation.

Run: `python benchmarks/evaluation.py` (needs `dvc repro train_classifier` first; ~1 min).
"""

from __future__ import annotations

import tempfile
import time

import torch
from _common import ROOT, data_dir, machine, table


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


if __name__ == "__main__":
    main()
