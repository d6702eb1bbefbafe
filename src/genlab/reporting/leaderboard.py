"""The leaderboard: every model's scores ranked, beside the real-vs-real floor and each
network's untrained score, as data (JSON), Markdown and CSV. The compare stage writes it; the
report page renders the same rows."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genlab.checks import MAX_CLASSES, as_mapping, finite_number, is_number, printable
from genlab.errors import StageInputError
from genlab.io import read_json_object
from genlab.layout import METRICS_DIR, class_grid, metrics_file, run_name, stage_instance
from genlab.metric_keys import (
    CLASS_ACCURACY,
    CLASS_SUMMARY_SCORES,
    CLASSES_DRAWN,
    FID_INF,
    FLAT_SCORE_KEYS,
    HIGHER_IS_BETTER,
    INTERVAL_ENDS,
    INTERVAL_SCORES,
    INTRA_CLASS_KID,
    MANIFOLD_SCORES,
    PER_CLASS,
    RANKABLE,
    REPORTED_SCORES,
    SEED_AGGREGATES,
    SEED_RANGE_RULE,
    WORST_CLASS,
    checked_classes_drawn,
    checked_per_class_rows,
    classes_drawn_note,
    display_exponent,
    flat_scores,
    intervals_overlap,
    scaled_header,
    seed_range,
    worst_class,
)

# the sets of scores a metrics record holds besides the model's own (top level)
SCORED_SETS = ("floor", "untrained")
# an extractor name as the config spells it (it is printed inside Markdown code spans)
_EXTRACTOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def evaluate_stage(model: str, seed: int | None) -> str:
    """The DVC stage that writes a run's metrics file."""
    return stage_instance("evaluate", model, seed)


def read_seed_metrics(
    metrics_dir: Path, models: list[str], seeds: list[int]
) -> dict[str, dict[int, dict[str, Any]]]:
    """{model: {seed: record}} from every run's metrics/<run name>.json (pipeline.models x
    pipeline.seeds, seeds in the order given: the first is the model's single run). Refused,
    naming the file and the key, when a listed run's file is missing, is not JSON, holds
    another run (its ``seed`` must be that very integer), a score is not a finite number or
    the runs used different extractors: the ranking needs numbers it can compare."""
    files = {(m, s): metrics_file(metrics_dir, run_name(m, s)) for m in models for s in seeds}
    missing = [(m, s) for (m, s), path in files.items() if not path.is_file()]
    if missing:
        model, seed = missing[0]
        raise StageInputError(
            f"no metrics for {', '.join(run_name(m, s) for m, s in missing)}: "
            f"{', '.join(str(files[run]) for run in missing)} not found: evaluate them first "
            f"(`dvc repro {evaluate_stage(model, seed)}`)"
        )
    records = {run: _read_record(path, run[0], evaluate_stage(*run)) for run, path in files.items()}
    for (model, seed), record in records.items():
        _refuse_non_finite(record, model, files[(model, seed)], evaluate_stage(model, seed))
        checks = (  # the seed is required: a run without one cannot be told from another
            ("model", "model" not in record or record["model"] == model),
            ("seed", type(record.get("seed")) is int and record["seed"] == seed),
        )
        wrong = [
            f"`{key}` is {_shown(record[key]) if key in record else 'missing'}"
            for key, ok in checks
            if not ok
        ]
        if wrong:
            raise StageInputError(
                f"{files[(model, seed)]}: {' and '.join(wrong)}, not the run "
                f"{run_name(model, seed)} it is named after: re-run "
                f"`dvc repro -f {evaluate_stage(model, seed)}`"
            )
    _refuse_mixed_extractors({run_name(*run): r for run, r in records.items()})
    return {m: {s: records[(m, s)] for s in seeds} for m in models}


def _refuse_mixed_extractors(results: dict[str, dict[str, Any]]) -> None:
    extractors = {m: r["extractor"] for m, r in results.items()}
    if len(set(extractors.values())) > 1:
        raise StageInputError(
            f"models were evaluated with different feature extractors {extractors}: their "
            f"scores are not comparable. Re-run evaluate with one metrics= choice."
        )


def _read_record(path: Path, model: str, stage: str) -> dict[str, Any]:
    """One metrics file, its scores checked to be numbers (or null: not recorded)."""
    redo = f"re-run its evaluation (`dvc repro -f {stage}`)"
    record = read_json_object(path, redo)
    extractor = record.get("extractor")
    if not (isinstance(extractor, str) and _EXTRACTOR_NAME.fullmatch(extractor)):
        raise StageInputError(
            f"{path}: `extractor` of {model} is {_shown(extractor)}, not the name of a feature "
            f"extractor, so its scores cannot be compared with the others': {redo}"
        )
    bad = _not_a_score(record)
    if bad:
        key, value, wanted = bad
        raise StageInputError(
            f"{path}: `{key}` of {model} is {_shown(value)} (not {wanted}), so the models cannot "
            f"be ranked: {redo}"
        )
    return record


def _shown(value: Any) -> str:
    """A value from someone else's file, for a one-line message."""
    return printable(json.dumps(value, default=str), limit=60)


def _not_a_score(record: dict[str, Any]) -> tuple[str, Any, str] | None:
    """The first score, interval bound or set of them in a metrics record that has the wrong
    type (its dotted key, value and what belongs there); None (not recorded) is fine."""
    sets = [("", record)] + [(f"{name}.", record.get(name)) for name in SCORED_SETS]
    for prefix, scored in sets:
        if scored is None:
            continue
        if not isinstance(scored, Mapping):
            return prefix.rstrip("."), scored, "an object of scores"
        for key in REPORTED_SCORES:
            value = scored.get(key)
            if value is not None and not is_number(value):
                return f"{prefix}{key}", value, "a number"
        intervals = scored.get("intervals")
        if intervals is None:
            continue
        if not isinstance(intervals, Mapping):
            return f"{prefix}intervals", intervals, "an object of intervals"
        for key in INTERVAL_SCORES:
            bounds = intervals.get(key)
            if bounds is not None and not isinstance(bounds, Mapping):
                return (
                    f"{prefix}intervals.{key}",
                    bounds,
                    f"an interval {{{', '.join(INTERVAL_ENDS)}}}",
                )
            for end in INTERVAL_ENDS:
                value = as_mapping(bounds).get(end)
                if value is not None and not is_number(value):
                    return f"{prefix}intervals.{key}.{end}", value, "a number"
    return None


def _non_finite(value: Any, key: str) -> tuple[str, float] | None:
    """The first NaN or infinite number in a metrics record (its dotted key and value), or an
    integer too large for a float (which every later float() would raise on)."""
    if is_number(value) and finite_number(value) is None:
        return key, value
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for name, item in items:
        found = _non_finite(item, f"{key}.{name}" if key else str(name))
        if found:
            return found
    return None


# what the leaderboard shows but never ranks by: read field by field (per_class_section,
# class_summary), a malformed value is "not recorded" there instead of refusing the file
UNRANKED_KEYS = (PER_CLASS, *CLASS_SUMMARY_SCORES)


def _refuse_non_finite(result: dict[str, Any], model: str, path: Path, stage: str) -> None:
    """NaN compares false with everything: a NaN score would land wherever the file order put
    it and decide the ranking. Python's json reads the ``NaN`` and ``Infinity`` it writes.
    The per-class figures (UNRANKED_KEYS) decide no ranking: they are checked where shown."""
    found = _non_finite({k: v for k, v in result.items() if k not in UNRANKED_KEYS}, "")
    if found:
        key, value = found
        raise StageInputError(
            f"{path}: metric `{printable(key, limit=80)}` of {model} is "
            f"{printable(str(value), limit=60)} (not a finite "
            f"number), so the models cannot be ranked. Re-run its evaluation (`dvc repro -f "
            f"{stage}`); if it stays non-finite, the generator's "
            "samples are broken: "
            f"retrain {model}."
        )


def _interval(result: dict[str, Any], key: str) -> dict[str, float] | None:
    """A score's {low, high} from a metrics record, None where it has none (older files, no
    bootstrap rounds, or a score such as fid_inf that is never given one)."""
    interval = as_mapping(as_mapping(as_mapping(result).get("intervals")).get(key))
    if not all(is_number(interval.get(end)) for end in INTERVAL_ENDS):
        return None
    return {end: interval[end] for end in INTERVAL_ENDS}


def _scored(result: Any) -> dict[str, Any]:
    """The scores a leaderboard row shows (None where the metrics file predates one) and their
    intervals."""
    result = as_mapping(result)
    scores = {k: result.get(k) for k in REPORTED_SCORES}
    intervals = {k: i for k in INTERVAL_SCORES if (i := _interval(result, k))}
    return {**scores, "intervals": intervals or None}


def find_ties(
    ranking: list[str],
    intervals: dict[str, dict[str, float] | None],
    floor: dict[str, float] | None,
) -> dict[str, Any]:
    """Which models the interval of the ranked score cannot tell apart, given in rank order.

    ``intervals`` holds each model's {low, high} of the rank_by score (None: unknown, so no
    claim about it either way). Returns the overlapping pairs (in rank order), per model the
    models it is tied with and whether it overlaps the floor (None when unknown), and the rank
    each model is shown with: that of the best-ranked model it is tied with (itself if none),
    with "=" in front when tied. The direction of the score (lower or higher is better) is in
    the ranking; overlap does not depend on it.
    """
    pairs = [
        [a, b]
        for i, a in enumerate(ranking)
        for b in ranking[i + 1 :]
        if intervals.get(a) and intervals.get(b) and intervals_overlap(intervals[a], intervals[b])
    ]
    tied_with: dict[str, list[str]] = {m: [] for m in ranking}
    for a, b in pairs:
        tied_with[a].append(b)
        tied_with[b].append(a)
    shown = {}
    for position, model in enumerate(ranking, start=1):
        if tied_with[model]:
            best = min(ranking.index(m) for m in (model, *tied_with[model])) + 1
            shown[model] = f"={best}"
        else:
            shown[model] = str(position)
    with_floor = {
        m: None if not (intervals.get(m) and floor) else intervals_overlap(intervals[m], floor)
        for m in ranking
    }
    return {"pairs": pairs, "tied_with": tied_with, "shown_rank": shown, "with_floor": with_floor}


def _seed_of(record: Any) -> int | None:
    seed = as_mapping(record).get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def over_seeds(runs: dict[Any, dict[str, Any]], model: str) -> dict[str, Any]:
    """A model's runs over seeds (``over_seeds`` of its leaderboard row): the seeds, each
    run's name, id and rankable scores (in seed order; the first is the single run), and per
    rankable score its mean, sample std (None with one value), min, max and n (the runs that
    recorded it); the same for the per-class summaries (metric_keys.CLASS_SUMMARY_SCORES)."""
    listed = []
    for seed, record in runs.items():
        record = as_mapping(record)
        listed.append(
            {
                "seed": seed,
                # from the model and seed, never from the file: the report reads runs/<name>/
                "run_name": model if seed is None else run_name(model, seed),
                "run_id": record.get("run_id"),
                **{key: record.get(key) for key in RANKABLE},
                # not ranked, not refused when malformed (UNRANKED_KEYS): checked here
                **{key: finite_number(record.get(key)) for key in CLASS_SUMMARY_SCORES},
            }
        )
    aggregates = {}
    for key in (*RANKABLE, *CLASS_SUMMARY_SCORES):
        values = [float(run[key]) for run in listed if finite_number(run[key]) is not None]
        found = dict.fromkeys(SEED_AGGREGATES)
        if values:
            found.update(
                mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else None,  # sample std
                min=min(values),
                max=max(values),
            )
        found["n"] = len(values)
        aggregates[key] = found
    return {
        "n": len(listed),
        "seeds": [run["seed"] for run in listed],
        "runs": listed,
        **aggregates,
    }


def build_leaderboard(
    results: dict[str, dict[str, Any]],
    rank_by: str,
    per_seed: dict[str, dict[Any, dict[str, Any]]] | None = None,
    metrics_dir: Path = Path(METRICS_DIR),
) -> dict[str, Any]:
    """Rank the models by the mean over seeds of ``rank_by`` and say which of them its
    confidence intervals (of the single runs, ``results``: each model's first seed) or its
    seed ranges cannot tell apart: a ranking of two models whose intervals overlap is noise
    at these sample counts, one whose seed ranges overlap may be training noise, so the board
    lists those pairs (``indistinguishable``, ``seed_ties.pairs``) instead of letting the order
    speak for itself. ``per_seed`` ({model: {seed: record}}, the first seed's record being the
    one in ``results``) defaults to the single runs (n=1); ``metrics_dir`` is where their
    files lie, for the messages."""
    if per_seed is None:
        per_seed = {m: {_seed_of(r): r} for m, r in results.items()}
    for model, result in results.items():
        first_seed = next(iter(per_seed[model]), None)
        _refuse_unrankable(model, first_seed, result.get(rank_by), rank_by, metrics_dir)
        for seed, record in per_seed[model].items():
            value = as_mapping(record).get(rank_by)
            _refuse_unrankable(model, seed, value, rank_by, metrics_dir)
    seeds = {m: over_seeds(per_seed[m], m) for m in results}
    sign = -1 if rank_by in HIGHER_IS_BETTER else 1
    ranking = sorted(results, key=lambda m: sign * seeds[m][rank_by]["mean"])
    first = results[ranking[0]]
    floor = _scored(first.get("floor"))
    intervals = {m: _interval(results[m], rank_by) for m in ranking}
    floor_interval = _interval(first.get("floor"), rank_by)
    ties = find_ties(ranking, intervals, floor_interval)
    ranges = {
        m: seed_range([run[rank_by] for run in seeds[m]["runs"]]) if seeds[m]["n"] > 1 else None
        for m in ranking
    }
    seed_ties = find_ties(ranking, ranges, None)
    rows = {}
    for rank, model in enumerate(ranking, start=1):
        result = results[model]
        row: dict[str, Any] = {
            "rank": rank,
            "shown_rank": ties["shown_rank"][model],
            "tied_with": ties["tied_with"][model],
            "indistinguishable_from_floor": ties["with_floor"][model],
            **_scored(result),
        }
        untrained = as_mapping(result.get("untrained"))
        if untrained:
            row.update({f"untrained_{k}": untrained.get(k) for k in ("fid", "kid_mean")})
        memorization = as_mapping(result.get("memorization"))
        if memorization:
            for space in ("feature", "pixel"):
                fraction = as_mapping(memorization.get(space)).get("fraction_below_threshold")
                row[f"memorization_{space}_fraction"] = fraction
            row["memorization_expected"] = memorization.get("expected_fraction_for_real_data")
        per_class, per_class_note = per_class_section(result.get(PER_CLASS))
        if per_class is not None:
            grid = class_grid(metrics_dir, seeds[model]["runs"][0]["run_name"])
            per_class["grid"] = str(grid)  # from the run's name, never from the file
        row.update(
            {key: finite_number(result.get(key)) for key in CLASS_SUMMARY_SCORES},
            per_class=per_class,
            per_class_note=per_class_note,
        )
        row.update(
            run_id=result.get("run_id"),
            seed=seeds[model]["seeds"][0],
            run_name=seeds[model]["runs"][0]["run_name"],
            train_steps=result.get("train_steps"),
            train_images_per_s=result.get("train_images_per_s"),
            train_wall_time_s=result.get("train_wall_time_s"),
            over_seeds=seeds[model],
            seed_shown_rank=seed_ties["shown_rank"][model],
            seed_tied_with=seed_ties["tied_with"][model],
        )
        rows[model] = row
    levels = {_level(results[m]) for m in ranking}
    return {
        "extractor": first["extractor"],
        "rank_by": rank_by,
        "ranking": ranking,
        "floor": floor,
        "models": rows,
        "indistinguishable": ties["pairs"],
        "ties": {
            "score": rank_by,
            "has_interval": rank_by in INTERVAL_SCORES,
            "level": levels.pop() if len(levels) == 1 else None,
            "without_interval": [m for m in ranking if intervals[m] is None],
            "floor_has_interval": floor_interval is not None,
        },
        "seed_ties": {
            "score": rank_by,
            "rule": SEED_RANGE_RULE,
            "pairs": seed_ties["pairs"],
            "single_seed": [m for m in ranking if ranges[m] is None],
        },
    }


# a per-class row's counts (non-negative integers) and its fractions (0..1); the rest of
# PER_CLASS_ROW_KEYS but "class" are finite numbers (KID, an unbiased estimate, may be < 0)
def per_class_section(value: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A metrics file's ``per_class`` section checked field by field (metrics files are
    someone else's files): ``({"conditional", "rows", "worst_class"}, None)``, each row
    holding metric_keys.PER_CLASS_ROW_KEYS with a malformed number as None, and the worst
    class worked out from those rows (metric_keys.worst_class), never taken from the file.
    ``(None, why)`` when the section is missing (an older file, an unlabelled dataset) or is
    not one: no rows, more than checks.MAX_CLASSES, or class names checks.class_names
    refuses (control characters, duplicates); the board then reads "not recorded"."""
    if value is None:
        return None, "not recorded"
    clean = checked_per_class_rows(value)
    if clean is None:
        return None, (
            f"not recorded (malformed `{PER_CLASS}.rows`: 1..{MAX_CLASSES} objects with "
            "distinct printable class names)"
        )
    conditional = as_mapping(value).get("conditional")
    return {
        "conditional": conditional if isinstance(conditional, bool) else None,
        "rows": clean,
        WORST_CLASS: worst_class(clean),
        CLASSES_DRAWN: checked_classes_drawn(value, len(clean)),
    }, None


def _refuse_unrankable(
    model: str, seed: int | None, value: Any, rank_by: str, metrics_dir: Path
) -> None:
    """A run (the model's ``seed``, as the caller read it; None: a seedless record) without a
    finite ``rank_by`` number has no place in the ranking: say why and what makes one
    (read_seed_metrics has refused the non-numbers, naming the file)."""
    path = metrics_file(metrics_dir, model if seed is None else run_name(model, seed))
    stage = evaluate_stage(model, seed)
    if value is None:
        needs = (
            " (it needs evaluate.sample_counts with two or more counts <= evaluate.num_samples)"
            if rank_by == FID_INF
            else ""
        )
        raise StageInputError(
            f"the metrics file of {model} ({path}) has no `{rank_by}`{needs}: "
            f"re-run `dvc repro -f {stage}`, or rank by another score (compare.rank_by)"
        )
    if finite_number(value) is None:  # NaN, inf, an integer too large for a float
        raise StageInputError(
            f"`{rank_by}` of {model} is {_shown(value)}: re-run `dvc repro -f {stage}`; "
            "only a finite number can be ranked"
        )


def _level(result: dict[str, Any]) -> float | None:
    """The confidence level of a record's bootstrap intervals (None: not recorded)."""
    level = as_mapping(as_mapping(result.get("comparability")).get("bootstrap")).get("level")
    return level if is_number(level) else None


def format_number(value: Any, digits: int = 4) -> str:
    number = finite_number(value)
    return "n/a" if number is None else f"{number:.{digits}g}"


def format_percent(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}%}" if is_number(value) else "n/a"


# the score columns of the table: (key in a metrics record, column header)
SCORE_COLUMNS = (
    ("fid", "FID"),
    ("kid_mean", "KID"),
    ("isc_mean", "IS"),
    *((key, key) for key in MANIFOLD_SCORES),
    (FID_INF, "FID_inf"),
)
LEADERBOARD_COLUMNS = (
    "rank",
    "model",
    "run id",
    *(column for _, column in SCORE_COLUMNS),
    "untrained FID",
    "untrained KID",
    "too close (feat / px)",
    "steps",
    "train img/s",
)
MARKDOWN_COLUMNS = tuple(column for column in LEADERBOARD_COLUMNS if column != "run id")
# the scores aggregated over seeds, in the table's column order
SEED_SCORE_COLUMNS = tuple((key, column) for key, column in SCORE_COLUMNS if key in RANKABLE)
SEED_COLUMNS = ("rank", "model", "seeds", *(c for _, c in SEED_SCORE_COLUMNS), "per seed")
LEFT_ALIGNED = frozenset({"model", "run id", "too close (feat / px)"})
FLOOR_LABEL = "floor (real vs real)"


def _too_close(row: dict[str, Any]) -> str:
    if "memorization_feature_fraction" not in row:
        return "n/a"
    return (
        f"{format_percent(row['memorization_feature_fraction'])} / "
        f"{format_percent(row.get('memorization_pixel_fraction'))}"
        f" (real: {format_percent(row.get('memorization_expected'), 0)})"
    )


def _pair_list(pairs: list[list[str]]) -> str:
    """``a and b; c and d``: the model pairs a tie sentence names (intervals or seed ranges)."""
    return "; ".join(f"{a} and {b}" for a, b in pairs)


def _listed(names: list[str], last: str = "and") -> str:
    return ", ".join(names[:-1]) + f" {last} {names[-1]}" if len(names) > 1 else names[0]


def better_sentence() -> str:
    """Which direction is better for each score column (from metric_keys.HIGHER_IS_BETTER):
    "FID, KID and FID_inf: lower is better; IS, precision, ...: higher is better." """
    lower = [column for key, column in SCORE_COLUMNS if key not in HIGHER_IS_BETTER]
    higher = [column for key, column in SCORE_COLUMNS if key in HIGHER_IS_BETTER]
    return f"{_listed(lower)}: lower is better; {_listed(higher)}: higher is better."


def scaled(value: Any, exponent: int) -> Any:
    """A score as shown: multiplied by 10^exponent (metric_keys.display_exponent); anything
    that is not a finite number as it is (format_number says "n/a")."""
    number = finite_number(value)
    return value if number is None or exponent == 0 else number * 10**exponent


def with_interval(
    value: Any, interval: dict[str, float] | None, digits: int = 4, exponent: int = 0
) -> str:
    """``137.9 [121.6, 155.4]``: the score, then its confidence interval when there is one,
    each multiplied by 10^exponent (the column header says so)."""
    text = format_number(scaled(value, exponent), digits)
    if not is_number(value) or not isinstance(interval, Mapping):
        return text
    low, high = (
        format_number(scaled(interval.get(end), exponent), digits) for end in INTERVAL_ENDS
    )
    return f"{text} [{low}, {high}]"


def _digits(key: str) -> int:
    return 3 if key in MANIFOLD_SCORES else 4


def _scores(row: Mapping[str, Any], extractor: Any) -> dict[str, str]:
    row = as_mapping(row)
    intervals = as_mapping(row.get("intervals"))
    cells = {
        column: with_interval(
            row.get(key), intervals.get(key), _digits(key), display_exponent(key, extractor)
        )
        for key, column in SCORE_COLUMNS
    }
    kid = row.get("kid_mean")
    if "kid_mean" not in intervals and is_number(kid):
        # a metrics file without intervals: the spread over KID subsets, as it always said
        mean = scaled(kid, display_exponent("kid_mean", extractor))
        std = scaled(row.get("kid_std"), display_exponent("kid_std", extractor))
        cells["KID"] = f"{format_number(mean)} ± {format_number(std, 2)}"
    return cells


# the score key behind each column whose header may carry a display scale
_COLUMN_KEYS = {
    **{column: key for key, column in SCORE_COLUMNS},
    "untrained FID": "fid",
    "untrained KID": "kid_mean",
}


def column_headers(board: Mapping[str, Any]) -> dict[str, str]:
    """{column: header as shown}: a KID column names its scale for the board's feature space
    (``KID x 10^3``, ``KID x 1``: metric_keys.scaled_header); the others as they are."""
    extractor = board.get("extractor")
    return {
        column: scaled_header(column, _COLUMN_KEYS.get(column, ""), extractor)
        for column in (*LEADERBOARD_COLUMNS, *SEED_COLUMNS)
    }


def leaderboard_rows(board: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """The leaderboard's display text, one (kind, column -> text) per row: the models in rank
    order (kind "model"), then the real-vs-real floor (kind "floor"). The Markdown table and
    the report page both render these. A model tied with another shows "=" and the rank of the
    best model it is tied with."""
    rows = []
    extractor = board.get("extractor")
    for model in board["ranking"]:
        row = board["models"][model]
        untrained_kid = scaled(
            row.get("untrained_kid_mean"), display_exponent("kid_mean", extractor)
        )
        cells = {
            "rank": str(row.get("shown_rank", row.get("rank", ""))),
            "model": model,
            "run id": str(row.get("run_id", "n/a")),
            **_scores(row, extractor),
            "untrained FID": format_number(row.get("untrained_fid")),
            "untrained KID": format_number(untrained_kid),
            "too close (feat / px)": _too_close(row),
            "steps": format_number(row.get("train_steps"), 12),
            "train img/s": format_number(row.get("train_images_per_s")),
        }
        rows.append(("model", cells))
    floor = dict.fromkeys(LEADERBOARD_COLUMNS, "")
    floor.update(_scores(board["floor"], extractor), model=FLOOR_LABEL)
    rows.append(("floor", floor))
    return rows


def mean_std(aggregate: Any, digits: int = 4, exponent: int = 0) -> str:
    """``61.2 ± 3.4 (n=3)``: mean and sample std over seeds; ``61.2 (n=1)`` from one run
    (no std); "n/a" when no run recorded the score."""
    aggregate = as_mapping(aggregate)
    n = aggregate.get("n")
    if not is_number(n) or not n or finite_number(aggregate.get("mean")) is None:
        return "n/a"
    mean = format_number(scaled(aggregate["mean"], exponent), digits)
    if n < 2 or finite_number(aggregate.get("std")) is None:
        return f"{mean} (n={n})"
    return f"{mean} ± {format_number(scaled(aggregate['std'], exponent), 2)} (n={n})"


def seed_rows(board: dict[str, Any]) -> list[dict[str, str]]:
    """The over-seeds table's text, one column -> text per model in rank order: each rankable
    score's mean ± std over the model's seeds, and the ranked score of each seed's run. A model
    whose seed range overlaps another's shows "=" and the rank of the best of them."""
    extractor = board.get("extractor")
    score = board.get("rank_by")
    exponent = display_exponent(str(score), extractor)
    rows = []
    for model in board["ranking"]:
        row = board["models"][model]
        seeds = as_mapping(row.get("over_seeds"))
        runs = [as_mapping(run) for run in seeds.get("runs") or []]
        cells = {
            "rank": str(row.get("seed_shown_rank", row.get("rank", ""))),
            "model": model,
            "seeds": ", ".join(_text_seed(run.get("seed")) for run in runs) or "n/a",
            **{
                column: mean_std(seeds.get(key), 4, display_exponent(key, extractor))
                for key, column in SEED_SCORE_COLUMNS
            },
            "per seed": " / ".join(format_number(scaled(run.get(score), exponent)) for run in runs)
            or "n/a",
        }
        rows.append(cells)
    return rows


def _text_seed(seed: Any) -> str:
    return str(seed) if isinstance(seed, int) else "?"


def seed_column_headers(board: Mapping[str, Any]) -> dict[str, str]:
    """The over-seeds table's headers: the score columns name their scale, "per seed" names
    the ranked score."""
    headers = column_headers(board)
    score = str(board.get("rank_by"))
    column = dict(SCORE_COLUMNS).get(score, score)
    headers["per seed"] = f"per seed ({scaled_header(column, score, board.get('extractor'))})"
    return headers


def seed_notes(board: dict[str, Any]) -> list[str]:
    """Sentences for under the over-seeds table: which models' seed ranges of the ranked
    score overlap (metric_keys.seed_range: their order may be training noise), or that they
    do not, or that one seed makes no claim."""
    ties = board.get("seed_ties")
    if ties is None:  # a leaderboard.json written before seeds were compared
        return ["This leaderboard predates the seeds axis: re-run `dvc repro compare`."]
    score, rule = ties.get("score"), ties.get("rule", SEED_RANGE_RULE)
    single = ties.get("single_seed") or []
    checked = [m for m in board["ranking"] if m not in single]
    notes = []
    pairs = ties.get("pairs") or []
    if pairs:
        listed = _pair_list(pairs)
        notes.append(
            f'Seed ranges overlap ({rule} of `{score}`; "=" in the rank over seeds), so '
            f"their order may be training noise: {listed}."
        )
    elif len(checked) > 1:
        notes.append(
            f"The seed ranges ({rule}) of `{score}` of {_listed(checked)} do not overlap: "
            "their order held on every seed."
        )
    if single and not checked:
        notes.append(
            "One seed per model (n=1): no claim about how far the scores move between seeds; "
            "set `pipeline.seeds: [0, 1, 2]` in params.yaml for that."
        )
    elif single:
        notes.append(f"One seed only (n=1), no seed-range claim: {_listed(single)}.")
    return notes


# the scores compare.rank_by may name that have a confidence interval
INTERVAL_RANKABLE = [f"`{key}`" for key in RANKABLE if key in INTERVAL_SCORES]


def tie_notes(board: dict[str, Any]) -> list[str]:
    """Sentences for under the table: which models the intervals of the ranked score cannot
    tell apart (from each other, or from the floor), or why no such claim is made."""
    score = board.get("rank_by")
    ties = board.get("ties")
    if ties is None:  # a leaderboard.json written before intervals were compared
        return ["This leaderboard predates the interval check: re-run `dvc repro compare`."]
    if not ties.get("has_interval"):
        return [
            f"`{score}` has no confidence interval, so this leaderboard makes no claim about "
            f"which differences are noise; rank by {_listed(INTERVAL_RANKABLE, 'or')} for that."
        ]
    level = ties.get("level")
    what = f"{level:.0%} intervals" if is_number(level) else "intervals"
    notes = []
    pairs = board.get("indistinguishable") or []
    if pairs:
        listed = _pair_list(pairs)
        notes.append(
            f"Not distinguishable at these sample counts (their {what} of `{score}` overlap; "
            f'"=" in the rank): {listed}.'
        )
    unknown = ties.get("without_interval") or []
    checked = [m for m in board["ranking"] if m not in unknown]
    if not pairs and len(checked) > 1:
        notes.append(
            f"The {what} of `{score}` of {_listed(checked)} do not overlap: their order is "
            "not noise at these sample counts."
        )
    near_floor = [
        m for m in board["ranking"] if board["models"][m].get("indistinguishable_from_floor")
    ]
    if near_floor:
        notes.append(
            f"Not distinguishable from the real-vs-real floor at these sample counts: "
            f"{_listed(near_floor)}."
        )
    if unknown:  # each model's single run: its first seed, as its row records it
        stages = " ".join(
            evaluate_stage(m, _seed_of(as_mapping(board["models"]).get(m))) for m in unknown
        )
        notes.append(
            f"No interval of `{score}` for {_listed(unknown)} (a metrics file without bootstrap "
            f"intervals): no tie claimed either way; re-run `dvc repro -f {stages}`."
        )
    return notes


def _markdown_table(columns: tuple[str, ...], headers: dict[str, str]) -> list[str]:
    align = ["---" if c in LEFT_ALIGNED else "---:" for c in columns]
    return ["| " + " | ".join(headers[c] for c in columns) + " |", "|" + "|".join(align) + "|"]


def _markdown_row(cells: dict[str, str], columns: tuple[str, ...]) -> str:
    # An empty cell as "| |", the way Markdown tables are usually written by hand.
    return "|" + "|".join(f" {cells[c]} " if cells[c] else " " for c in columns) + "|"


def single_run_sentence(board: dict[str, Any]) -> str:
    """Which run the single-run numbers are: each model's first listed seed."""
    seeds = {as_mapping(board["models"][m]).get("seed") for m in board["ranking"]}
    which = f" (seed {seeds.pop()})" if len(seeds) == 1 and None not in seeds else ""
    return (
        f"Single-run numbers: each model's first seed{which}; ranked by the mean over seeds of "
        f"`{board['rank_by']}` (the table over seeds below)."
    )


SEEDS_SENTENCE = (
    "Mean ± sample standard deviation over each model's seeds (n: the runs that recorded the "
    "score; n=1 has no std); *per seed*: the ranked score of each seed's run, in seed order."
)


def leaderboard_markdown(board: dict[str, Any], link_from: Path | None = None) -> str:
    """leaderboard.md: the single runs, the table over seeds and the per-class section (its
    grid links relative to ``link_from``, the folder the file is written to)."""
    headers = column_headers(board)
    lines = [
        "# Leaderboard",
        "",
        f"Feature extractor: `{board['extractor']}`; ranked by `{board['rank_by']}`.",
        single_run_sentence(board),
        better_sentence(),
        "Brackets: the bootstrap confidence interval. *FID_inf*: FID extrapolated to infinitely",
        "many samples. *Floor* is real-vs-real (train split vs test split): what a perfect",
        "generator would score. *Untrained* is the same network before training, scored on the",
        "same samples' seeds. *Too close*: share of samples nearer to a training image",
        "(features / pixels) than the closest few percent of real test images are (that few",
        "percent is what a model that never copies scores).",
        "",
        *_markdown_table(MARKDOWN_COLUMNS, headers),
    ]
    for kind, cells in leaderboard_rows(board):
        if kind == "floor":
            cells = {**cells, "model": f"*{cells['model']}*"}
        lines.append(_markdown_row(cells, MARKDOWN_COLUMNS))
    notes = tie_notes(board)
    if notes:
        lines += ["", *notes]
    lines += ["", "## Over seeds", "", SEEDS_SENTENCE, ""]
    lines += _markdown_table(SEED_COLUMNS, seed_column_headers(board))
    lines += [_markdown_row(cells, SEED_COLUMNS) for cells in seed_rows(board)]
    lines += ["", *seed_notes(board)]
    lines += ["", *per_class_markdown(board, link_from)]
    return "\n".join(lines) + "\n"


# -- per class: each model's per_class rows (metrics/<run>.json, checked by per_class_section) --
PER_CLASS_COLUMNS = (
    "class",
    "samples",
    "test images",
    "intra-class KID",
    "accuracy",
    "too close",
    "worst",
)
CLASS_SUMMARY_COLUMNS = (
    "model",
    "conditional",
    "class accuracy",
    "class accuracy over seeds",
    "intra-class KID",
    "intra-class KID over seeds",
    "worst class",
)
WORST_MARK = "worst"
PER_CLASS_SENTENCE = (
    "Per class (each model's first seed): *accuracy*: the share of the samples asked for a "
    "class that the domain classifier puts in that class (class-conditional models only); "
    "*intra-class KID*: that class's samples against that class's test images (an "
    "unconditional model's samples are sorted into classes by the classifier); *too close*: "
    "share of the class's samples nearer to a training image than the memorization "
    "threshold. The worst class: one drawn fewer than twice (no intra-class KID), else the "
    "lowest accuracy, else the highest intra-class KID; the means over classes leave out the "
    'classes a model does not draw ("k of C classes drawn").'
)


def board_per_class(row: Any) -> tuple[dict[str, Any] | None, str]:
    """A leaderboard row's per-class section, checked again (leaderboard.json may be someone
    else's file too) with its grid path when it names one, or None and what to show instead."""
    row = as_mapping(row)
    given = row.get(PER_CLASS)
    section, note = per_class_section(given)
    if section is None:
        recorded = row.get("per_class_note")
        why = recorded if given is None and isinstance(recorded, str) else note
        return None, printable(str(why), limit=120)
    grid = as_mapping(given).get("grid")
    section["grid"] = grid if isinstance(grid, str) and grid.isprintable() else None
    return section, ""


def class_name_text(name: Any) -> str:
    """A class name as table text (checked printable; cut short like any name from a file)."""
    return printable(str(name), limit=64)


def per_class_headers(board: Mapping[str, Any]) -> dict[str, str]:
    """Per-class and class-summary headers: the intra-class KID columns name their display
    scale, the same rule as KID (metric_keys.scaled_header)."""
    extractor = board.get("extractor")
    columns = (*PER_CLASS_COLUMNS, *CLASS_SUMMARY_COLUMNS)
    return {
        c: scaled_header(c, "kid_mean", extractor) if "intra-class KID" in c else c for c in columns
    }


def per_class_rows(board: Mapping[str, Any], model: str) -> list[dict[str, str]]:
    """A model's per-class table as text, one column -> text per class (its first seed's
    run); [] when not recorded. The worst class reads "worst" in the last column."""
    section, _ = board_per_class(as_mapping(board.get("models")).get(model))
    if section is None:
        return []
    extractor = board.get("extractor")
    kid = display_exponent("kid_mean", extractor)
    rows = []
    for row in section["rows"]:
        text = format_number(scaled(row["kid_mean"], kid))
        if row["kid_mean"] is not None and row["kid_std"] is not None:
            text += f" ± {format_number(scaled(row['kid_std'], kid), 2)}"
        rows.append(
            {
                "class": class_name_text(row["class"]),
                "samples": format_number(row["samples"], 12),
                "test images": format_number(row["test_images"], 12),
                "intra-class KID": text,
                "accuracy": format_percent(row["accuracy"]),
                "too close": format_percent(row["memorized_fraction"]),
                "worst": WORST_MARK if row["class"] == section[WORST_CLASS] else "",
            }
        )
    return rows


def class_summary_rows(board: Mapping[str, Any]) -> list[dict[str, str]]:
    """Per model in rank order: whether it is class-conditional, its mean per-class accuracy
    and intra-class KID (first seed; mean ± std over seeds) and its worst class."""
    extractor = board.get("extractor")
    kid = display_exponent("kid_mean", extractor)
    rows = []
    for model in board["ranking"]:
        row = as_mapping(board["models"][model])
        section, note = board_per_class(row)
        seeds = as_mapping(row.get("over_seeds"))
        conditional = None if section is None else section["conditional"]
        worst = None if section is None else section[WORST_CLASS]
        rows.append(
            {
                "model": model,
                "conditional": {True: "yes", False: "no"}.get(conditional, "n/a"),
                "class accuracy": format_percent(finite_number(row.get(CLASS_ACCURACY))),
                "class accuracy over seeds": _percent_mean_std(seeds.get(CLASS_ACCURACY)),
                "intra-class KID": _with_drawn(
                    format_number(scaled(finite_number(row.get(INTRA_CLASS_KID)), kid)), section
                ),
                "intra-class KID over seeds": mean_std(seeds.get(INTRA_CLASS_KID), 4, kid),
                "worst class": class_name_text(worst) if worst is not None else note or "n/a",
            }
        )
    return rows


def drawn_note(section: Mapping[str, Any] | None) -> str | None:
    """``"3 of 10 classes drawn"`` for a checked per-class section whose model drew fewer
    classes than there are (metric_keys.classes_drawn_note), else None."""
    if section is None:
        return None
    return classes_drawn_note(section.get(CLASSES_DRAWN), len(section["rows"]))


def _with_drawn(text: str, section: Mapping[str, Any] | None) -> str:
    note = drawn_note(section)
    return f"{text} ({note})" if note else text


def _percent_mean_std(aggregate: Any) -> str:
    """``80.2% ± 4.5% (n=2)``: a share's mean_std over seeds, in percent like its column."""
    aggregate = as_mapping(aggregate)
    mean, std, n = (aggregate.get(k) for k in ("mean", "std", "n"))
    if finite_number(mean) is None or not is_number(n) or not n:
        return "n/a"
    spread = f" ± {format_percent(std)}" if finite_number(std) is not None and n > 1 else ""
    return f"{format_percent(mean)}{spread} (n={n})"


def markdown_text(text: str) -> str:
    """Text from someone else's file as one Markdown table cell that reads as it is: no
    markup, link or HTML can form and a ``|`` cannot end the cell."""
    return re.sub(r"([\\`*_\[\]()<>!|#~])", r"\\\1", text)


def _link_target(path: str, link_from: Path | None) -> str:
    return os.path.relpath(path, link_from) if link_from is not None else path


def per_class_markdown(board: dict[str, Any], link_from: Path | None = None) -> list[str]:
    """leaderboard.md's per-class section: the summary over models, then each model's table
    (worst class marked) and a link to its class x seed grid (layout.class_grid), relative to
    ``link_from`` (the folder the Markdown file is written to)."""
    headers = per_class_headers(board)
    lines = ["## Per class", "", PER_CLASS_SENTENCE, ""]
    lines += _markdown_table(CLASS_SUMMARY_COLUMNS, headers)
    for cells in class_summary_rows(board):
        cells = {**cells, "worst class": markdown_text(cells["worst class"])}
        lines.append(_markdown_row(cells, CLASS_SUMMARY_COLUMNS))
    for model in board["ranking"]:
        row = as_mapping(board["models"][model])
        lines += ["", f"### {model} (run {_text_run(row)})", ""]
        section, note = board_per_class(row)
        if section is None:
            lines.append(f"Per-class figures: {note}.")
            continue
        if drawn_note(section):
            lines += [f"Only {drawn_note(section)}: the others have no intra-class KID.", ""]
        lines += _markdown_table(PER_CLASS_COLUMNS, headers)
        for cells in per_class_rows(board, model):
            cells = {**cells, "class": markdown_text(cells["class"])}
            lines.append(_markdown_row(cells, PER_CLASS_COLUMNS))
        if section["grid"]:
            target = _link_target(section["grid"], link_from)
            lines += [
                "",
                f"Class grid (a row per class, a column per latent seed): "
                f"[{markdown_text(Path(target).name)}](<{target.replace('>', '%3E')}>)",
            ]
    return lines


def _text_run(row: Mapping[str, Any]) -> str:
    name = row.get("run_name")
    return markdown_text(printable(name, limit=100)) if isinstance(name, str) else "n/a"


# <score>_seeds_<aggregate>: a row's over_seeds.<score>.<aggregate> as a flat CSV column
SEED_CSV_KEYS = tuple(f"{key}_seeds_{agg}" for key in RANKABLE for agg in SEED_AGGREGATES)
# the per-class summaries (first seed, then over seeds), after the columns that came before them
CLASS_CSV_KEYS = (
    *CLASS_SUMMARY_SCORES,
    *(f"{key}_seeds_{agg}" for key in CLASS_SUMMARY_SCORES for agg in SEED_AGGREGATES),
)
SCORES_CSV_COLUMNS = ("model", *FLAT_SCORE_KEYS, *SEED_CSV_KEYS, *CLASS_CSV_KEYS)


def scores_csv(board: dict[str, Any]) -> str:
    """One row per model (and the floor), for DVC's bar plots of FID and KID: the single run's
    scores and bounds, the aggregates over seeds, then the per-class summaries (first seed,
    over seeds); an empty cell where a score, interval
    or aggregate is unknown (the floor has no seeds)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SCORES_CSV_COLUMNS)
    named = [(model, board["models"][model]) for model in board["ranking"]]
    for name, row in [*named, ("real vs real (floor)", board["floor"])]:
        seeds = as_mapping(as_mapping(row).get("over_seeds"))
        values = {
            **flat_scores(row),
            **{
                f"{key}_seeds_{agg}": as_mapping(seeds.get(key)).get(agg)
                for key in (*RANKABLE, *CLASS_SUMMARY_SCORES)
                for agg in SEED_AGGREGATES
            },
            **{key: finite_number(as_mapping(row).get(key)) for key in CLASS_SUMMARY_SCORES},
        }
        writer.writerow([name, *(values[c] for c in SCORES_CSV_COLUMNS[1:])])
    return out.getvalue()
