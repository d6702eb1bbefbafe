"""The leaderboard: every model's scores ranked, beside the real-vs-real floor and each
network's untrained score, as data (JSON), Markdown and CSV. The compare stage writes it; the
report page renders the same rows."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from genlab.errors import StageInputError
from genlab.layout import metrics_file
from genlab.metric_keys import (
    FID_INF,
    FLAT_SCORE_KEYS,
    HIGHER_IS_BETTER,
    INTERVAL_SCORES,
    MANIFOLD_SCORES,
    REPORTED_SCORES,
    flat_scores,
    intervals_overlap,
)


def read_metrics(metrics_dir: Path, models: list[str]) -> dict[str, dict[str, Any]]:
    missing = [m for m in models if not metrics_file(metrics_dir, m).is_file()]
    if missing:
        raise StageInputError(
            f"no metrics for {', '.join(missing)} in {metrics_dir}: evaluate them first "
            f"(`dvc repro evaluate@{missing[0]}`)"
        )
    results = {m: json.loads(metrics_file(metrics_dir, m).read_text()) for m in models}
    for model, result in results.items():
        _refuse_non_finite(result, model, metrics_file(metrics_dir, model))
    extractors = {m: r["extractor"] for m, r in results.items()}
    if len(set(extractors.values())) > 1:
        raise StageInputError(
            f"models were evaluated with different feature extractors {extractors}: their "
            f"scores are not comparable. Re-run evaluate with one metrics= choice."
        )
    return results


def _non_finite(value: Any, key: str) -> tuple[str, float] | None:
    """The first NaN or infinite number in a metrics record (its dotted key and value)."""
    if isinstance(value, float) and not math.isfinite(value):
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
            f"{path}: metric `{key}` of {model} is {value} (not a finite number), so the models "
            f"cannot be ranked. Re-run its evaluation (`dvc repro -f evaluate@{model}`); if it "
            f"stays non-finite, the generator's samples are broken: retrain {model}."
        )


def _interval(result: dict[str, Any], key: str) -> dict[str, float] | None:
    """A score's {low, high} from a metrics record, None where it has none (older files, no
    bootstrap rounds, or a score such as fid_inf that is never given one)."""
    interval = (result.get("intervals") or {}).get(key)
    if not interval or interval.get("low") is None or interval.get("high") is None:
        return None
    return {"low": interval["low"], "high": interval["high"]}


def _scored(result: dict[str, Any]) -> dict[str, Any]:
    """The scores a leaderboard row shows (None where the metrics file predates one) and their
    intervals."""
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
        if not math.isfinite(result[rank_by]):  # read_metrics refuses these, naming the file
            raise StageInputError(
                f"`{rank_by}` of {model} is {result[rank_by]}: re-run `dvc repro -f "
                f"evaluate@{model}`; a non-finite score cannot be ranked"
            )
    sign = -1 if rank_by in HIGHER_IS_BETTER else 1
    ranking = sorted(results, key=lambda m: sign * results[m][rank_by])
    first = results[ranking[0]]
    floor = _scored(first["floor"])
    intervals = {m: _interval(results[m], rank_by) for m in ranking}
    ties = find_ties(ranking, intervals, _interval(first["floor"], rank_by))
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
        if result.get("untrained"):
            row.update({f"untrained_{k}": result["untrained"][k] for k in ("fid", "kid_mean")})
        memorization = result.get("memorization")
        if memorization:
            for space in ("feature", "pixel"):
                fraction = memorization[space]["fraction_below_threshold"]
                row[f"memorization_{space}_fraction"] = fraction
            row["memorization_expected"] = memorization["expected_fraction_for_real_data"]
        row.update(
            run_id=result["run_id"],
            train_steps=result["train_steps"],
            train_images_per_s=result.get("train_images_per_s"),
            train_wall_time_s=result.get("train_wall_time_s"),
        )
        rows[model] = row
    levels = {
        ((results[m].get("comparability") or {}).get("bootstrap") or {}).get("level")
        for m in ranking
    }
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
            "floor_has_interval": _interval(first["floor"], rank_by) is not None,
        },
    }


def format_number(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def format_percent(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}%}"


LEADERBOARD_COLUMNS = (
    "rank",
    "model",
    "run id",
    "FID",
    "KID",
    "IS",
    *MANIFOLD_SCORES,  # the key is the column header
    "FID_inf",
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


def with_interval(value: Any, interval: dict[str, float] | None, digits: int = 4) -> str:
    """``137.9 [121.6, 155.4]``: the score, then its confidence interval when there is one."""
    text = format_number(value, digits)
    if value is None or not interval:
        return text
    low, high = format_number(interval["low"], digits), format_number(interval["high"], digits)
    return f"{text} [{low}, {high}]"


def _scores(row: dict[str, Any]) -> dict[str, str]:
    intervals = row.get("intervals") or {}
    kid = row.get("kid_mean")
    if "kid_mean" in intervals or kid is None:
        kid_text = with_interval(kid, intervals.get("kid_mean"))
    else:  # a metrics file without intervals: the spread over KID subsets, as it always said
        kid_text = f"{format_number(kid)} ± {format_number(row.get('kid_std'), 2)}"
    return {
        "FID": with_interval(row.get("fid"), intervals.get("fid")),
        "KID": kid_text,
        "IS": format_number(row.get("isc_mean")),
        **{key: with_interval(row.get(key), intervals.get(key), 3) for key in MANIFOLD_SCORES},
        "FID_inf": format_number(row.get(FID_INF)),
    }


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
            "steps": str(row.get("train_steps", "n/a")),
            "train img/s": format_number(row.get("train_images_per_s")),
        }
        rows.append(("model", cells))
    floor = dict.fromkeys(LEADERBOARD_COLUMNS, "")
    floor.update(_scores(board["floor"]), model=FLOOR_LABEL)
    rows.append(("floor", floor))
    return rows


def _names(models: list[str]) -> str:
    return ", ".join(models[:-1]) + f" and {models[-1]}" if len(models) > 1 else models[0]


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
            "which differences are noise; rank by `fid` or `kid_mean` for that."
        ]
    level = ties.get("level")
    what = f"{level:.0%} intervals" if level else "intervals"
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
            f"The {what} of `{score}` of {_names(checked)} do not overlap: their order is "
            "not noise at these sample counts."
        )
    near_floor = [
        m for m in board["ranking"] if board["models"][m].get("indistinguishable_from_floor")
    ]
    if near_floor:
        notes.append(
            f"Not distinguishable from the real-vs-real floor at these sample counts: "
            f"{_names(near_floor)}."
        )
    if unknown:
        notes.append(
            f"No interval of `{score}` for {_names(unknown)} (a metrics file without bootstrap "
            f"intervals): no tie claimed either way; re-run `dvc repro -f evaluate@{unknown[0]}`."
        )
    return notes


def leaderboard_markdown(board: dict[str, Any]) -> str:
    align = ["---" if c in LEFT_ALIGNED else "---:" for c in MARKDOWN_COLUMNS]
    lines = [
        "# Leaderboard",
        "",
        f"Feature extractor: `{board['extractor']}`; ranked by `{board['rank_by']}`. FID and KID:",
        "lower is better; IS, precision, recall, density and coverage: higher is better.",
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
