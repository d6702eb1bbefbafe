"""The names of the scores genlab reports, ranks by and optimizes: one list for the evaluate
stage, the leaderboard, the config schema and the sweep objective."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genlab.checks import MAX_CLASSES, as_mapping, class_names, finite_number

# torch-fidelity's keys, as written to metrics/<run name>.json (model, floor and untrained)
FIDELITY_SCORES = ("fid", "isc_mean", "isc_std", "kid_mean", "kid_std")
# fidelity and diversity apart (k-NN manifolds in the same feature space as FID / KID)
MANIFOLD_SCORES = ("precision", "recall", "density", "coverage")
# distances between the sample and reference distributions
DISTRIBUTION_SCORES = ("fid", "kid_mean")
# the scores given a bootstrap interval ({low, high, std} under "intervals")
INTERVAL_SCORES = (*DISTRIBUTION_SCORES, *MANIFOLD_SCORES)
# where a score can lie (KID, an unbiased estimate, can fall below zero): intervals are cut to it
SCORE_RANGES = {
    "fid": (0.0, float("inf")),
    "kid_mean": (float("-inf"), float("inf")),
    **{key: (0.0, 1.0) for key in MANIFOLD_SCORES if key != "density"},
    "density": (0.0, float("inf")),  # samples per real k-NN ball / k: above 1 when clustered
}
# FID extrapolated to infinitely many samples
FID_INF = "fid_inf"


# every score of one sample set (the model's, the floor's) in a metrics file
REPORTED_SCORES = (*FIDELITY_SCORES, *MANIFOLD_SCORES, FID_INF)
# the ends of a bootstrap interval ({low, high} under "intervals"; flat: fid_low, fid_high)
INTERVAL_ENDS = ("low", "high")
FLAT_SCORE_KEYS = (
    *REPORTED_SCORES,
    *(f"{key}_{end}" for key in INTERVAL_SCORES for end in INTERVAL_ENDS),
)


def flat_scores(scored: dict) -> dict:
    """A set's scores and interval bounds as flat keys (fid, ..., fid_low, fid_high, ...), for
    CSV columns, W&B summaries and export.json; None where a file does not hold one (written
    before it existed, or without bootstrap rounds)."""
    intervals = scored.get("intervals")
    intervals = intervals if isinstance(intervals, dict) else {}  # a hostile file: no bounds
    flat = {key: scored.get(key) for key in REPORTED_SCORES}
    for key in INTERVAL_SCORES:
        interval = intervals.get(key)
        for end in INTERVAL_ENDS:
            flat[f"{key}_{end}"] = interval.get(end) if isinstance(interval, dict) else None
    return flat


def intervals_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    """True when two {low, high} intervals share a point: the scores are not distinguishable
    at these sample counts (the leaderboard's rule for not ranking noise)."""
    return a["low"] <= b["high"] and b["low"] <= a["high"]


def seed_range(values: list[float]) -> dict[str, float]:
    """A score's {low, high} over seeds: min..max of the runs' values. The leaderboard's rule
    for seeds (beside intervals_overlap for bootstrap intervals): two models whose seed ranges
    share a point are not told apart by training noise. min..max, not mean +- std: it needs no
    distribution, holds every run, and with one seed is the value itself."""
    return {"low": min(values), "high": max(values)}


SEED_RANGE_RULE = "min..max over seeds"
# what the leaderboard aggregates over a model's seeds, per rankable score (over_seeds.<score>)
SEED_AGGREGATES = ("mean", "std", "min", "max", "n")

# The power of ten a score is shown multiplied by, per feature space (metrics.extractor): KID in
# Inception features is ~0.01 (x 10^3 reads as ~10), in genlab's classifier features it is in
# the hundreds (x 1). Only the display is scaled; every file keeps the raw number.
DISPLAY_EXPONENTS = {"kid_mean": {"inception": 3}, "kid_std": {"inception": 3}}


def display_exponent(key: str, extractor: str | None) -> int:
    """The power of ten ``key`` is multiplied by for display in ``extractor``'s feature space
    (0 for every score but KID, and for a feature space without a rule)."""
    return DISPLAY_EXPONENTS.get(key, {}).get(str(extractor), 0)


def scaled_header(header: str, key: str, extractor: str | None) -> str:
    """``KID x 10^3`` (Inception features) or ``KID x 1`` (classifier features): a KID column
    always states its scale; other columns keep their header."""
    if key not in DISPLAY_EXPONENTS:
        return header
    exponent = display_exponent(key, extractor)
    return f"{header} x {'1' if exponent == 0 else f'10^{exponent}'}"


# what compare.rank_by may name
RANKABLE = ("kid_mean", "fid", "isc_mean", FID_INF)
HIGHER_IS_BETTER = frozenset({"isc_mean", *MANIFOLD_SCORES})
# what a hyperparameter search may minimize (train.objective.metric)
OBJECTIVES = ("kid_mean", "fid")


# -- per-class evaluation: metrics/<run name>.json's "per_class" section ------------------------
PER_CLASS = "per_class"
#: One row per class of the dataset: its name and index; the samples scored for it (a
#: conditional model: drawn for that class; an unconditional one: those the classifier assigns
#: to it) and that class's test images; intra-class KID (that class's samples against that
#: class's test images, classifier features); the classifier's accuracy on samples drawn for
#: the class ("does G(z, 7) look like a 7": conditional models only, None otherwise); and the
#: share of its samples closer to a training image than the memorization threshold.
PER_CLASS_ROW_KEYS = (
    "class",
    "index",
    "samples",
    "test_images",
    "kid_mean",
    "kid_std",
    "accuracy",
    "memorized_fraction",
)
#: Summaries over the classes, flat at the top of the metrics file (dvc metrics, leaderboard):
#: the mean per-class sample accuracy (None for an unconditional model) and the mean intra-class
#: KID (same feature space and display scale as kid_mean).
CLASS_ACCURACY = "class_accuracy"
INTRA_CLASS_KID = "intra_class_kid"
CLASS_SUMMARY_SCORES = (CLASS_ACCURACY, INTRA_CLASS_KID)
#: In the per_class section: the class the model does worst on (the model card flags it).
WORST_CLASS = "worst_class"
#: In the per_class section: how many classes have at least MIN_CLASS_SAMPLES samples (an
#: unconditional model: the classes it was seen to draw). A class with fewer has no intra-class
#: KID, so intra_class_kid is the mean over the drawn classes only: readers show "k of C classes
#: drawn" beside it when k < C.
CLASSES_DRAWN = "classes_drawn"
MIN_CLASS_SAMPLES = 2  # an unbiased KID needs two samples


def worst_class(rows: list[dict]) -> str | None:
    """The worst class of per-class rows: a class with fewer than MIN_CLASS_SAMPLES samples
    first (the fewest first: a class the model hardly ever draws is its worst, though it has
    no KID), else the lowest sample accuracy when the rows have one (a conditional model), else
    the highest intra-class KID; None when no row has a number."""
    missing = [
        (count, index, row["class"])
        for index, row in enumerate(rows)
        for count in [finite_number(row.get("samples"))]
        if count is not None and count < MIN_CLASS_SAMPLES
    ]
    if missing:
        return min(missing)[2]
    for key, pick in (("accuracy", min), ("kid_mean", max)):
        scored = [(finite_number(row.get(key)), row["class"]) for row in rows]
        scored = [(value, name) for value, name in scored if value is not None]
        if scored:
            return pick(scored)[1]
    return None


def classes_drawn(rows: list[dict]) -> int:
    """How many of the rows' classes have at least MIN_CLASS_SAMPLES samples."""
    return sum(1 for row in rows if (finite_number(row.get("samples")) or 0) >= MIN_CLASS_SAMPLES)


def checked_classes_drawn(section: Any, num_classes: int) -> int | None:
    """A metrics file's ``per_class.classes_drawn`` (someone else's file): an integer in
    0..num_classes, else None (not recorded, or not a count of these classes)."""
    value = as_mapping(section).get(CLASSES_DRAWN)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= num_classes:
        return value
    return None


def classes_drawn_note(drawn: int | None, num_classes: int) -> str | None:
    """``"3 of 10 classes drawn"`` when a model drew fewer classes than there are (the figures
    over classes leave the others out), else None."""
    if drawn is None or drawn >= num_classes:
        return None
    return f"{drawn} of {num_classes} classes drawn"


#: per-class row figures that are counts, and shares that lie in 0..1
PER_CLASS_COUNTS = frozenset({"index", "samples", "test_images"})
PER_CLASS_SHARES = frozenset({"accuracy", "memorized_fraction"})


def checked_per_class_rows(section: Any) -> list[dict[str, Any]] | None:
    """A metrics file's ``per_class`` rows checked field by field (someone else's file): each
    row with PER_CLASS_ROW_KEYS, a figure that is not a number of its kind (a count, a share
    in 0..1, a finite number) as None. None when the rows are not 1..MAX_CLASSES objects with
    distinct printable class names (checks.class_names): the readers say "not recorded"."""
    rows = as_mapping(section).get("rows")
    if not isinstance(rows, list) or not 0 < len(rows) <= MAX_CLASSES:
        return None
    if not all(isinstance(row, Mapping) for row in rows):
        return None
    if class_names([row.get("class") for row in rows]) is None:
        return None
    return [
        {
            key: row["class"] if key == "class" else _row_figure(key, row.get(key))
            for key in PER_CLASS_ROW_KEYS
        }
        for row in rows
    ]


def _row_figure(key: str, value: Any) -> float | int | None:
    number = finite_number(value)
    if number is None:
        return None
    if key in PER_CLASS_COUNTS:
        return int(number) if number >= 0 and number == int(number) else None
    if key in PER_CLASS_SHARES and not 0.0 <= number <= 1.0:
        return None
    return number
