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
from genlab.metric_keys import FIDELITY_SCORES, HIGHER_IS_BETTER


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


def build_leaderboard(results: dict[str, dict[str, Any]], rank_by: str) -> dict[str, Any]:
    for model, result in results.items():
        if not math.isfinite(result[rank_by]):  # read_metrics refuses these, naming the file
            raise StageInputError(
                f"`{rank_by}` of {model} is {result[rank_by]}: re-run `dvc repro -f "
                f"evaluate@{model}`; a non-finite score cannot be ranked"
            )
    sign = -1 if rank_by in HIGHER_IS_BETTER else 1
    ranking = sorted(results, key=lambda m: sign * results[m][rank_by])
    first = results[ranking[0]]
    rows = {}
    for rank, model in enumerate(ranking, start=1):
        result = results[model]
        row: dict[str, Any] = {"rank": rank, **{k: result[k] for k in FIDELITY_SCORES}}
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
    return {
        "extractor": first["extractor"],
        "rank_by": rank_by,
        "ranking": ranking,
        "floor": {k: first["floor"][k] for k in FIDELITY_SCORES},
        "models": rows,
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
    "untrained FID",
    "untrained KID",
    "too close (feat / px)",
    "steps",
    "train img/s",
)
MARKDOWN_COLUMNS = tuple(column for column in LEADERBOARD_COLUMNS if column != "run id")


def _too_close(row: dict[str, Any]) -> str:
    if "memorization_feature_fraction" not in row:
        return "n/a"
    return (
        f"{format_percent(row['memorization_feature_fraction'])} / "
        f"{format_percent(row.get('memorization_pixel_fraction'))}"
        f" (real: {format_percent(row.get('memorization_expected'), 0)})"
    )


def _scores(row: dict[str, Any]) -> dict[str, str]:
    return {
        "FID": format_number(row.get("fid")),
        "KID": f"{format_number(row.get('kid_mean'))} ± {format_number(row.get('kid_std'), 2)}",
        "IS": format_number(row.get("isc_mean")),
    }


def leaderboard_rows(board: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """The leaderboard's display text, one (kind, column -> text) per row: the models in rank
    order (kind "model"), then the real-vs-real floor (kind "floor"). The Markdown table and
    the report page both render these."""
    rows = []
    for model in board["ranking"]:
        row = board["models"][model]
        cells = {
            "rank": str(row.get("rank", "")),
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
    floor.update(model="floor (real vs real)", **_scores(board["floor"]))
    rows.append(("floor", floor))
    return rows


def leaderboard_markdown(board: dict[str, Any]) -> str:
    lines = [
        "# Leaderboard",
        "",
        f"Feature extractor: `{board['extractor']}`; ranked by `{board['rank_by']}`. FID and KID:",
        "lower is better; IS: higher is better. *Floor* is real-vs-real (train split vs test",
        "split): what a perfect generator would score. *Untrained* is the same network before",
        "training, scored on the same samples' seeds. *Too close*: share of samples nearer to a",
        "training image (features / pixels) than the closest few percent of real test images are",
        "(that few percent is what a model that never copies scores).",
        "",
        "| " + " | ".join(MARKDOWN_COLUMNS) + " |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for kind, cells in leaderboard_rows(board):
        if kind == "floor":
            cells = {**cells, "model": f"*{cells['model']}*"}
        # An empty cell as "| |", the way Markdown tables are usually written by hand.
        lines.append(
            "|" + "|".join(f" {cells[c]} " if cells[c] else " " for c in MARKDOWN_COLUMNS) + "|"
        )
    return "\n".join(lines) + "\n"


def scores_csv(board: dict[str, Any]) -> str:
    """One row per model (and the floor), for DVC's bar plots of FID and KID."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", "fid", "kid_mean", "isc_mean"])
    for model, row in board["models"].items():
        writer.writerow([model, row["fid"], row["kid_mean"], row["isc_mean"]])
    floor = board["floor"]
    writer.writerow(["real vs real (floor)", floor["fid"], floor["kid_mean"], floor["isc_mean"]])
    return out.getvalue()
