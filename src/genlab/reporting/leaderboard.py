"""The leaderboard: every model's scores ranked, beside the real-vs-real floor and each
network's untrained score, as data (JSON), Markdown and CSV. The compare stage writes it; the
report page renders the same rows."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genlab.checks import as_mapping, finite_number, is_number, printable
from genlab.errors import StageInputError
from genlab.io import read_json_object
from genlab.layout import metrics_file
from genlab.metric_keys import (
    FID_INF,
    FLAT_SCORE_KEYS,
    HIGHER_IS_BETTER,
    INTERVAL_ENDS,
    INTERVAL_SCORES,
    MANIFOLD_SCORES,
    RANKABLE,
    REPORTED_SCORES,
    flat_scores,
    intervals_overlap,
)

# the sets of scores a metrics record holds besides the model's own (top level)
SCORED_SETS = ("floor", "untrained")
# an extractor name as the config spells it (it is printed inside Markdown code spans)
_EXTRACTOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def read_metrics(metrics_dir: Path, models: list[str]) -> dict[str, dict[str, Any]]:
    """Every model's metrics/<model>.json, refused (naming the file and the key) when it is
    not JSON, a score is not a finite number or the models used different extractors: the
    ranking needs numbers it can compare."""
    missing = [m for m in models if not metrics_file(metrics_dir, m).is_file()]
    if missing:
        raise StageInputError(
            f"no metrics for {', '.join(missing)} in {metrics_dir}: evaluate them first "
            f"(`dvc repro evaluate@{missing[0]}`)"
        )
    results = {m: _read_record(metrics_file(metrics_dir, m), m) for m in models}
    for model, result in results.items():
        _refuse_non_finite(result, model, metrics_file(metrics_dir, model))
    extractors = {m: r["extractor"] for m, r in results.items()}
    if len(set(extractors.values())) > 1:
        raise StageInputError(
            f"models were evaluated with different feature extractors {extractors}: their "
            f"scores are not comparable. Re-run evaluate with one metrics= choice."
        )
    return results


def _read_record(path: Path, model: str) -> dict[str, Any]:
    """One metrics file, its scores checked to be numbers (or null: not recorded)."""
    redo = f"re-run its evaluation (`dvc repro -f evaluate@{model}`)"
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


def _refuse_non_finite(result: dict[str, Any], model: str, path: Path) -> None:
    """NaN compares false with everything: a NaN score would land wherever the file order put
    it and decide the ranking. Python's json reads the ``NaN`` and ``Infinity`` it writes."""
    found = _non_finite(result, "")
    if found:
        key, value = found
        raise StageInputError(
            f"{path}: metric `{printable(key, limit=80)}` of {model} is "
            f"{printable(str(value), limit=60)} (not a finite "
            f"number), so the models cannot be ranked. Re-run its evaluation (`dvc repro -f "
            f"evaluate@{model}`); if it stays non-finite, the generator's samples are broken: "
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


def build_leaderboard(results: dict[str, dict[str, Any]], rank_by: str) -> dict[str, Any]:
    """Rank the models by ``rank_by`` and say which of them its confidence intervals cannot
    tell apart: a ranking of two models whose intervals overlap is noise at these sample
    counts, so the board lists those pairs (``indistinguishable``) instead of letting the order
    speak for itself."""
    for model, result in results.items():
        _refuse_unrankable(model, result.get(rank_by), rank_by)
    sign = -1 if rank_by in HIGHER_IS_BETTER else 1
    ranking = sorted(results, key=lambda m: sign * results[m][rank_by])
    first = results[ranking[0]]
    floor = _scored(first.get("floor"))
    intervals = {m: _interval(results[m], rank_by) for m in ranking}
    floor_interval = _interval(first.get("floor"), rank_by)
    ties = find_ties(ranking, intervals, floor_interval)
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
        row.update(
            run_id=result.get("run_id"),
            train_steps=result.get("train_steps"),
            train_images_per_s=result.get("train_images_per_s"),
            train_wall_time_s=result.get("train_wall_time_s"),
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
    }


def _refuse_unrankable(model: str, value: Any, rank_by: str) -> None:
    """A model without a finite ``rank_by`` number has no place in the ranking: say why and
    what makes one (read_metrics has refused the non-numbers, naming the file)."""
    if value is None:
        needs = (
            " (it needs evaluate.sample_counts with two or more counts <= evaluate.num_samples)"
            if rank_by == FID_INF
            else ""
        )
        raise StageInputError(
            f"the metrics file of {model} (metrics/{model}.json) has no `{rank_by}`{needs}: "
            f"re-run `dvc repro -f evaluate@{model}`, or rank by another score (compare.rank_by)"
        )
    if finite_number(value) is None:  # NaN, inf, an integer too large for a float
        raise StageInputError(
            f"`{rank_by}` of {model} is {_shown(value)}: re-run `dvc repro -f evaluate@{model}`; "
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


def _listed(names: list[str], last: str = "and") -> str:
    return ", ".join(names[:-1]) + f" {last} {names[-1]}" if len(names) > 1 else names[0]


def better_sentence() -> str:
    """Which direction is better for each score column (from metric_keys.HIGHER_IS_BETTER):
    "FID, KID and FID_inf: lower is better; IS, precision, ...: higher is better." """
    lower = [column for key, column in SCORE_COLUMNS if key not in HIGHER_IS_BETTER]
    higher = [column for key, column in SCORE_COLUMNS if key in HIGHER_IS_BETTER]
    return f"{_listed(lower)}: lower is better; {_listed(higher)}: higher is better."


def with_interval(value: Any, interval: dict[str, float] | None, digits: int = 4) -> str:
    """``137.9 [121.6, 155.4]``: the score, then its confidence interval when there is one."""
    text = format_number(value, digits)
    if not is_number(value) or not isinstance(interval, Mapping):
        return text
    low, high = (format_number(interval.get(end), digits) for end in INTERVAL_ENDS)
    return f"{text} [{low}, {high}]"


def _scores(row: Mapping[str, Any]) -> dict[str, str]:
    row = as_mapping(row)
    intervals = as_mapping(row.get("intervals"))
    cells = {
        column: with_interval(row.get(key), intervals.get(key), 3 if key in MANIFOLD_SCORES else 4)
        for key, column in SCORE_COLUMNS
    }
    kid = row.get("kid_mean")
    if "kid_mean" not in intervals and is_number(kid):
        # a metrics file without intervals: the spread over KID subsets, as it always said
        cells["KID"] = f"{format_number(kid)} ± {format_number(row.get('kid_std'), 2)}"
    return cells


def leaderboard_rows(board: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """The leaderboard's display text, one (kind, column -> text) per row: the models in rank
    order (kind "model"), then the real-vs-real floor (kind "floor"). The Markdown table and
    the report page both render these. A model tied with another shows "=" and the rank of the
    best model it is tied with."""
    rows = []
    for model in board["ranking"]:
        row = board["models"][model]
        cells = {
            "rank": str(row.get("shown_rank", row.get("rank", ""))),
            "model": model,
            "run id": str(row.get("run_id", "n/a")),
            **_scores(row),
            "untrained FID": format_number(row.get("untrained_fid")),
            "untrained KID": format_number(row.get("untrained_kid_mean")),
            "too close (feat / px)": _too_close(row),
            "steps": format_number(row.get("train_steps"), 12),
            "train img/s": format_number(row.get("train_images_per_s")),
        }
        rows.append(("model", cells))
    floor = dict.fromkeys(LEADERBOARD_COLUMNS, "")
    floor.update(_scores(board["floor"]), model=FLOOR_LABEL)
    rows.append(("floor", floor))
    return rows


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
        listed = "; ".join(f"{a} and {b}" for a, b in pairs)
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
    if unknown:
        notes.append(
            f"No interval of `{score}` for {_listed(unknown)} (a metrics file without bootstrap "
            f"intervals): no tie claimed either way; re-run `dvc repro -f evaluate@{unknown[0]}`."
        )
    return notes


def leaderboard_markdown(board: dict[str, Any]) -> str:
    align = ["---" if c in LEFT_ALIGNED else "---:" for c in MARKDOWN_COLUMNS]
    lines = [
        "# Leaderboard",
        "",
        f"Feature extractor: `{board['extractor']}`; ranked by `{board['rank_by']}`.",
        better_sentence(),
        "Brackets: the bootstrap confidence interval. *FID_inf*: FID extrapolated to infinitely",
        "many samples. *Floor* is real-vs-real (train split vs test split): what a perfect",
        "generator would score. *Untrained* is the same network before training, scored on the",
        "same samples' seeds. *Too close*: share of samples nearer to a training image",
        "(features / pixels) than the closest few percent of real test images are (that few",
        "percent is what a model that never copies scores).",
        "",
        "| " + " | ".join(MARKDOWN_COLUMNS) + " |",
        "|" + "|".join(align) + "|",
    ]
    for kind, cells in leaderboard_rows(board):
        if kind == "floor":
            cells = {**cells, "model": f"*{cells['model']}*"}
        # An empty cell as "| |", the way Markdown tables are usually written by hand.
        lines.append(
            "|" + "|".join(f" {cells[c]} " if cells[c] else " " for c in MARKDOWN_COLUMNS) + "|"
        )
    notes = tie_notes(board)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


SCORES_CSV_COLUMNS = ("model", *FLAT_SCORE_KEYS)


def scores_csv(board: dict[str, Any]) -> str:
    """One row per model (and the floor), for DVC's bar plots of FID and KID; an empty cell
    where a score or interval is unknown."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SCORES_CSV_COLUMNS)
    named = [(model, board["models"][model]) for model in board["ranking"]]
    for name, row in [*named, ("real vs real (floor)", board["floor"])]:
        values = flat_scores(row)
        writer.writerow([name, *(values[c] for c in SCORES_CSV_COLUMNS[1:])])
    return out.getvalue()
