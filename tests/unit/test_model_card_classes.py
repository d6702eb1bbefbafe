"""The model card's Classes section: whether the model is class-conditional (and so whether
`genlab generate --class` applies), its class names, its per-class figures as a table and its
worst class in a sentence; a metrics file without (or with a malformed) per_class reads "not
recorded", and nothing from the file becomes Markdown."""

from __future__ import annotations

import math
import re

import pytest

from genlab.export.model_card import NOT_RECORDED, render_model_card
from genlab.metric_keys import CLASS_ACCURACY, CLASSES_DRAWN, INTRA_CLASS_KID, PER_CLASS

from .test_leaderboard_per_class import per_class

NAMES = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]


def section(card: str) -> str:
    return card.split("## Classes\n\n")[1].split("\n## ")[0]


def card_of(conditioning: str | None, accuracy, kid, **metrics) -> str:
    config = {"model": {"name": "m", "conditioning": conditioning}} if conditioning else {}
    record = {
        PER_CLASS: per_class(accuracy, kid, conditioning == "class", names=NAMES[: len(kid)]),
        CLASS_ACCURACY: None,
        INTRA_CLASS_KID: sum(kid) / len(kid),
        **metrics,
    }
    return render_model_card(
        {
            "model_name": "m",
            "config": config,
            "class_names": NAMES[: len(kid)] if conditioning == "class" else [],
            "metrics": record,
        }
    )


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def test_a_conditional_models_card_flags_its_lowest_accuracy_class():
    accuracy = [0.97, 0.9, 0.88, 0.93, 0.95, 0.9, 0.96, 0.92, 0.61, 0.9]
    kid = [10.0 + i for i in range(10)]
    card = card_of("class", accuracy, kid, **{CLASS_ACCURACY: sum(accuracy) / 10})
    text = section(card)
    assert "- **Class-conditional:** yes: `genlab generate --class" in text
    assert "- **Classes:** 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in text
    assert f"- **Mean per-class accuracy:** {sum(accuracy) / 10:.0%}" in text
    assert (
        "Worst class: 8 (accuracy 0.61): samples asked for 8 are classified as 8 only 61% of "
        "the time." in text
    )
    rows = table_rows(text)
    assert [row[0] for row in rows] == [*NAMES[:8], "**8** (worst)", "9"]
    assert rows[3][1:] == ["103", "33", "13", "93.0%", "3.0%"]
    assert "does not apply" not in text


def test_an_unconditional_models_card_says_class_does_not_apply_and_flags_the_highest_kid():
    kid = [40.0, 95.5, 60.0]
    text = section(card_of("none", [None] * 3, kid))
    assert "- **Class-conditional:** no (model.conditioning=none): `--class` does not apply" in (
        text
    )
    assert "- **Classes:** 0, 1, 2" in text, "the classes its samples were sorted into"
    assert f"- **Mean per-class accuracy:** {NOT_RECORDED}" in text
    assert "Worst class: 1 (highest intra-class KID, 95.5)" in text
    assert [row[4] for row in table_rows(text)] == [NOT_RECORDED] * 3


def test_a_card_from_before_class_conditioning_says_not_measured():
    text = section(render_model_card({"model_name": "m", "metrics": {"fid": 1.0}}))
    assert text.startswith("Not measured: a model trained and evaluated before class")
    assert "`dvc repro evaluate" in text


@pytest.mark.parametrize(
    "value",
    [
        [],
        "rows",
        {"rows": [{"class": "x\x1b]0;pwned\x07"}]},
        {"rows": [{"class": f"c{i}"} for i in range(5000)]},
    ],
    ids=["empty-list", "string", "control-characters", "huge"],
)
def test_a_missing_or_malformed_per_class_reads_not_recorded(value):
    card = render_model_card(
        {"model_name": "m", "metrics": {PER_CLASS: value, CLASS_ACCURACY: math.nan}}
    )
    text = section(card)
    assert f"Per-class figures: {NOT_RECORDED}" in text
    assert f"- **Class-conditional:** {NOT_RECORDED}" in text
    assert f"- **Mean per-class accuracy:** {NOT_RECORDED}" in text
    assert "\x1b" not in card and "pwned" not in card and "c4999" not in card


def test_figures_from_the_file_are_text_never_markup():
    kid = [1.0, 2.0]
    record = per_class([0.5, math.nan], kid, True, names=["[x](http://e.vil)", "<img src=y>"])
    record["rows"][0]["memorized_fraction"] = 3.0  # not a share
    card = render_model_card(
        {
            "model_name": "m",
            "config": {"model": {"conditioning": "class"}},
            "metrics": {PER_CLASS: record},
        }
    )
    text = section(card)
    assert "<img" not in card and "](http" not in card
    rows = table_rows(text)
    assert rows[1][4] == NOT_RECORDED and rows[0][5] == NOT_RECORDED
    assert re.search(r"Worst class: .*x.* \(accuracy 0\.50\)", text)


def test_an_unconditional_model_that_never_draws_a_class_is_flagged_for_it():
    kid = [40.0, 95.5, 60.0]
    config = {"model": {"name": "m", "conditioning": "none"}}
    record = per_class([None] * 3, kid, False, names=NAMES[:3])
    record["rows"][2].update(samples=0, kid_mean=None, kid_std=None)
    record[CLASSES_DRAWN] = 2
    metrics = {PER_CLASS: record, INTRA_CLASS_KID: (40.0 + 95.5) / 2}
    text = section(render_model_card({"model_name": "m", "config": config, "metrics": metrics}))
    assert "- **Mean intra-class KID:** 67.75 (over the drawn classes only: 2 of 3 classes" in text
    assert "Worst class: 2 (0 of the evaluated samples): the model hardly ever draws 2" in text
    assert [row[0] for row in table_rows(text)] == ["0", "1", "**2** (worst)"]
    for hostile in (3, 4, -1, True, "2"):  # not a count of these classes: not shown
        record[CLASSES_DRAWN] = hostile
        text = section(render_model_card({"model_name": "m", "config": config, "metrics": metrics}))
        assert "drawn classes" not in text


def test_a_conditional_exports_section_says_what_label_takes():
    export = {"onnx": {"path": "g.onnx", "max_abs_diff": 0.0}, "num_classes": 10}
    card = render_model_card({"model_name": "m", "export": export})
    exports = card.split("## Exports\n\n")[1].split("\n## ")[0]
    assert "`label` (int64, batch): class indices in 0..9" in exports
    assert "outside 0..9 gives images of NaN" in exports
    for unconditional in (0, None, "10", True):
        card = render_model_card(
            {"model_name": "m", "export": {**export, "num_classes": unconditional}}
        )
        assert "`label`" not in card.split("## Exports")[1].split("\n## ")[0]
