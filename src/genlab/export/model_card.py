"""Markdown model cards: what a generator is for, what it is not for, and how good it is.

A card travels with every exported model so that readers see the limits of the numbers
(tiny images, small data, domain-classifier features) next to the numbers themselves.
"""

from __future__ import annotations

import html
import json
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from genlab.checks import (
    CLASS_CONDITIONAL,
    CONDITIONING,
    UNCONDITIONAL,
    as_mapping,
    class_names,
    finite_number,
    is_number,
)
from genlab.credentials import TRAINED as IPTC_TRAINED
from genlab.export.graph_metadata import NUM_CLASSES
from genlab.io import write_text
from genlab.layout import stage_instance
from genlab.metric_keys import (
    CLASS_ACCURACY,
    FID_INF,
    HIGHER_IS_BETTER,
    INTERVAL_ENDS,
    INTRA_CLASS_KID,
    MIN_CLASS_SAMPLES,
    PER_CLASS,
    checked_classes_drawn,
    checked_per_class_rows,
    classes_drawn_note,
    worst_class,
)

NOT_RECORDED = "not recorded"
LOW, HIGH = INTERVAL_ENDS


# (key, label) in the metrics table; KID first: it is the headline metric. Which direction is
# better comes from metric_keys.HIGHER_IS_BETTER (a spread has none).
METRIC_ROWS = (
    ("kid_mean", "KID (mean)"),
    ("kid_std", "KID (std)"),
    ("fid", "FID"),
    (FID_INF, "FID_inf (FID at infinitely many samples)"),
    ("precision", "Precision (fidelity)"),
    ("recall", "Recall (diversity)"),
    ("density", "Density (fidelity)"),
    ("coverage", "Coverage (diversity)"),
    ("isc_mean", "Inception-style score (mean)"),
)
SPREADS = frozenset({"kid_std"})

INTENDED_USE = """\
- Research on generative models: comparing architectures, objectives and training recipes.
- Teaching: showing how image generators are trained, evaluated and exported.
- Benchmarking on the training dataset, against the real-vs-real floor reported below."""

OUT_OF_SCOPE = """\
- Passing generated images off as real photographs, scans or measurements.
- Identification, recognition or re-identification of people.
- Any decision about people (hiring, credit, policing, medical, access to services).
- Use outside the training domain; the model has only seen the dataset described below."""

LIMITATIONS = """\
- Tiny resolution: outputs are thumbnails at the training image size, not usable imagery.
- Small training data: the model covers only the variation present in a small dataset.
- {extractor}
- FID is biased upwards at small sample counts: FID_inf (FID extrapolated to infinitely many
  samples, a straight line in 1/N) removes that bias, and **KID is the headline metric**
  (unbiased). Every value should be read against the real-vs-real floor measured with the same
  extractor, and with its bootstrap interval: two models whose intervals overlap are not
  distinguishable at these sample counts.
- Precision and density measure fidelity (samples that look like real images), recall and
  coverage diversity (real images the samples reach); none of them detects copies of
  training images: see Memorization."""
EXTRACTOR_LIMITS = {
    "inception": (
        "Metrics use torch-fidelity's Inception-v3 features of thumbnails upsampled to its "
        "input size; the values depend on that resize and on the sample count, and are\n  "
        "**not comparable** to Inception FID reported in papers at other resolutions."
    ),
    "classifier": (
        "Metrics use features of a domain classifier trained for this dataset, not "
        "Inception-v3;\n  the FID/KID values here are **not comparable** to Inception FID "
        "reported in papers."
    ),
}

RISKS = """\
- Copying of training images (memorization): samples may reproduce training examples;
  check nearest neighbours in the training set before sharing samples.
- Misleading use: generated images may be presented as real; see Provenance.
- Privacy of training data: anything in the training images (faces, handwriting, text) can
  leak into samples; do not train on data whose subjects did not consent to this use."""

PROVENANCE = f"""\
Every image exported by genlab is written with provenance metadata: the IPTC
`DigitalSourceType` `{IPTC_TRAINED}` (as a PNG text chunk and in an XMP packet),
`genlab:machine_generated = true`, and the model name, run id, training fingerprint, code
version and dataset hash.
Exported ONNX models carry the same fields as `metadata_props`. Do not strip this metadata.
Anyone can write such metadata: what proves it is the signed content credentials below."""

# the commands the Content credentials section shows, with the model's name put in when it is
# a plain folder name (anything else could break out of the code block)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_FINGERPRINT = re.compile(r"SHA256(:[0-9A-F]{2}){32}")


def render_model_card(info: Mapping[str, Any]) -> str:
    """Render a Markdown model card; missing optional entries read "not recorded".

    ``info`` keys (all optional):

    - ``model_name``, ``run_name`` (the export folder's name), ``family``, ``run_id``, ``created``
      (ISO time), ``code_version``
      (git sha or "unknown"): identity of the trained model.
    - ``config``: nested dict (or DictConfig) of the training config, shown as YAML.
    - ``data``: ``name``, ``counts`` ({split: count}), ``image_size``, ``channels``,
      ``licence`` (or ``license``), ``source``.
    - ``class_names``: the generator file's ``class_names`` ([] for an unconditional model);
      the config's ``model.conditioning`` says whether the model is class-conditional.
    - ``metrics``: the evaluate stage's metrics/<run>.json: ``extractor``, ``counts``
      (samples, reference, ...), ``splits``, the scores (``fid``, ``kid_mean``, ``kid_std``,
      ``isc_mean``, ``precision``, ``recall``, ``density``, ``coverage``, ``fid_inf``),
      ``intervals`` ({score: {low, high}}), ``floor`` (same keys, real-vs-real values) and
      ``comparability`` (what decides the numbers), ``per_class`` (a row per class,
      metric_keys.PER_CLASS_ROW_KEYS), ``class_accuracy`` and ``intra_class_kid``; a file
      written before a key existed
      shows "not recorded" for it.
    - ``export``: ``onnx`` / ``torchscript`` dicts with ``path`` and ``max_abs_diff``
      (the dicts returned by ``export_onnx`` / ``export_torchscript``), and ``credentials``
      (``trust_anchor_fingerprint``, ``signer_fingerprint``, ``files``: {model file:
      {``manifest``, ``sha256``}}), the export stage's record of its C2PA signatures.
    """
    name = _fmt(info.get("model_name"))
    metrics = as_mapping(info.get("metrics"))
    sections = [
        f"# Model card: {name}",
        "> Images produced by this model are machine-generated (IPTC trainedAlgorithmicMedia).",
        _section("Model details", _details(info)),
        _section("Intended use", INTENDED_USE),
        _section("Out-of-scope uses", OUT_OF_SCOPE),
        _section("Training data", _data(as_mapping(info.get("data")))),
        _section("Evaluation", _metrics(metrics)),
        _section("Classes", _classes(info, metrics)),
        _section("Memorization", _memorization(metrics.get("memorization"))),
        _section("Exports", _exports(as_mapping(info.get("export")))),
        _section("Limitations", _limitations(metrics)),
        _section("Risks", RISKS),
        _section("Provenance", PROVENANCE),
        _section(
            "Content credentials",
            _credentials(info.get("run_name"), (info.get("export") or {}).get("credentials")),
        ),
        _section("Training configuration", _config(info.get("config"))),
    ]
    return "\n\n".join(sections) + "\n"


def write_model_card(path: str | os.PathLike, info: Mapping[str, Any]) -> Path:
    """Render and write the card atomically, so a killed stage leaves no partial card."""
    target = Path(path)
    write_text(target, render_model_card(info))
    return target


def _section(title: str, body: str) -> str:
    return f"## {title}\n\n{body}"


def _fmt(value: Any) -> str:
    """Human-readable cell text; ``None`` and empty values read "not recorded"."""
    if value is None or (isinstance(value, (str, Mapping, list, tuple)) and len(value) == 0):
        return NOT_RECORDED
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.5g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{plain_text(str(k))}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return plain_text(str(value))


# Markdown punctuation that can start a link, an image, code or a table cell: escaped with a
# backslash, which every CommonMark renderer shows as the character itself.
_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`[]()!|"})
# Everything Python (and so a renderer) may treat as a line end: a new line could start a
# heading, a list, a raw-HTML block or a link reference definition.
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


# What starts a GFM autolink (GitHub, W&B, the Hub link a bare URL, www. name or e-mail
# address): the slashes of `scheme://`, the dot of `www.` and the `@` of an address, each
# escaped with a backslash -- the rendered text is unchanged, but no link forms.
_AUTOLINK_START = re.compile(r"(?<=:)/|(?<=:/)/|(?<=\bwww)\.|@", re.IGNORECASE)


def plain_text(text: str) -> str:
    """``text`` as it reads, never as markup: for every string the card did not write itself
    (the dataset's meta.json and licence may come from someone else's archive or config,
    the record from someone else's generator file). HTML is escaped (``<script>`` shows as
    text), link and image syntax and bare-URL autolinks cannot form, and the text stays on
    one line."""
    text = html.escape(_LINE_BREAKS.sub(" ", text), quote=False)
    return _AUTOLINK_START.sub(r"\\\g<0>", text.translate(_MARKDOWN_SPECIAL))


def _bullets(rows: Sequence[tuple[str, Any]]) -> str:
    return "\n".join(f"- **{label}:** {_fmt(value)}" for label, value in rows)


def _details(info: Mapping[str, Any]) -> str:
    return _bullets(
        [
            ("Model", info.get("model_name")),
            ("Family", info.get("family")),
            ("Run id", info.get("run_id")),
            ("Created", info.get("created")),
            ("Code version", info.get("code_version")),
        ]
    )


def _data(data: Mapping[str, Any]) -> str:
    licence = data.get("licence", data.get("license"))
    rows = [
        ("Dataset", data.get("name")),
        ("Images per split", data.get("counts")),
        ("Image size", data.get("image_size")),
        ("Channels", data.get("channels")),
        ("Licence", licence),
        ("Source", data.get("source")),
    ]
    duplicates = as_mapping(data.get("duplicates"))
    if duplicates:  # only datasets genlab builds from files carry the report
        rows.append(
            (
                "Duplicates",
                f"{_fmt(duplicates.get('exact_duplicates'))} exact, "
                f"{_fmt(duplicates.get('near_duplicate_pairs'))} near-duplicate pairs "
                f"({_fmt(duplicates.get('method'))}); they inflate the memorization "
                f"figures and bias FID; the list is in duplicates.json beside the dataset",
            )
        )
    if isinstance(data.get("skipped"), list) and data["skipped"]:
        rows.append(("Unreadable files skipped", len(data["skipped"])))
    return _bullets(rows)


def _metrics(metrics: Mapping[str, Any]) -> str:
    floor = as_mapping(metrics.get("floor"))
    rows = [
        ("Feature extractor", metrics.get("extractor")),
        ("Sample counts", metrics.get("counts")),
        ("Real splits used", metrics.get("splits")),
    ]
    if metrics.get("extractor_objective"):
        rows.insert(1, ("Extractor trained for", metrics["extractor_objective"]))
    facts = as_mapping(metrics.get("comparability"))
    decides = _comparability(facts) or NOT_RECORDED
    header = _bullets(rows) + f"\n- **What decides these numbers:** {decides}"
    level = as_mapping(facts.get("bootstrap")).get("level")
    interval = f" [{_percent(level)} interval]" if is_number(level) else ""
    table = [
        f"| Metric | Better | Model{interval} | Real-vs-real floor{interval} |",
        "|---|---|---|---|",
        *(
            f"| {label} | {_better(key)} | {_scored(metrics, key)} | {_scored(floor, key)} |"
            for key, label in METRIC_ROWS
        ),
    ]
    note = (
        "The floor compares two disjoint sets of real images with the same extractor: "
        "no generator can be expected to score better than it. "
        + (
            "[low, high] is a bootstrap interval (samples and reference resampled): scores "
            "whose intervals overlap are not distinguishable at these sample counts. "
            if interval
            else ""
        )
        + "FID_inf is FID extrapolated to infinitely many samples from FID at several sample "
        "counts: it compares between evaluations with different sample counts."
    )
    return "\n\n".join([header, "\n".join(table), note])


def _better(key: str) -> str:
    if key in SPREADS:
        return "-"
    return "higher" if key in HIGHER_IS_BETTER else "lower"


def _score(value: Any) -> str:
    """A score as text; anything but a number (not recorded, or malformed) reads so."""
    return _fmt(value) if is_number(value) else NOT_RECORDED


def _scored(record: Mapping[str, Any], key: str) -> str:
    """A score with its interval when one was recorded: ``12.346 [10.1, 14.2]``."""
    text = _score(record.get(key))
    bounds = as_mapping(as_mapping(record.get("intervals")).get(key))
    if is_number(record.get(key)) and is_number(bounds.get(LOW)):
        text += f" [{_score(bounds.get(LOW))}, {_score(bounds.get(HIGH))}]"
    return text


def _percent(value: Any, digits: int = 0) -> str:
    return f"{float(value):.{digits}%}" if is_number(value) else NOT_RECORDED


def _comparability(facts: Mapping[str, Any] | None) -> str | None:
    """One line of what decides the numbers (extractor and weights, input, reference, sample
    count, bootstrap, versions): two cards that differ here do not have comparable scores.
    Markdown, every recorded value escaped; None for a metrics file written before it was
    recorded."""
    if not facts:
        return None
    sha = facts.get("weights_sha256")
    known = facts.get("weights_known")
    known = (
        ", known"
        if known is True
        else ", NOT torch-fidelity's known weights"
        if known is False
        else ""
    )
    weights = f"weights sha256 {_fmt(str(sha)[:12])}...{known}" if sha else "no weights file"
    source = as_mapping(facts.get("input"))
    reference, floor = as_mapping(facts.get("reference")), as_mapping(facts.get("floor_samples"))
    boot = as_mapping(facts.get("bootstrap"))
    bootstrap = (
        f"bootstrap {_fmt(boot.get('rounds'))} rounds at {_percent(boot.get('level'))}"
        if boot.get("rounds")
        else "no bootstrap"
    )
    counts = as_mapping(facts.get("sample_counts"))
    curve = f"sample counts {_fmt(counts.get('counts'))}" if counts.get("counts") else "no curve"
    versions = ", ".join(
        f"{_fmt(name)} {_fmt(number)}" for name, number in as_mapping(facts.get("versions")).items()
    )
    return "; ".join(
        [
            f"extractor {_fmt(facts.get('feature_extractor') or facts.get('extractor'))} "
            f"({weights})",
            f"input {_fmt(source.get('size'))} px, {_fmt(source.get('filter'))}",
            f"reference {_fmt(reference.get('split'))} split, {_fmt(reference.get('size'))} images",
            f"floor {_fmt(floor.get('split'))} split, {_fmt(floor.get('size'))} images",
            f"{_fmt(facts.get('samples'))} samples (seed {_fmt(facts.get('sample_seed'))})",
            f"k = {_fmt(facts.get('nearest_k'))} nearest neighbours",
            bootstrap,
            curve,
            versions or f"versions {NOT_RECORDED}",
        ]
    )


def _conditioning(info: Mapping[str, Any], section: Mapping[str, Any]) -> str | None:
    """ "class" or "none": the training config's model.conditioning, else what the per-class
    evaluation recorded; None when neither says."""
    given = as_mapping(as_mapping(info.get("config")).get("model")).get("conditioning")
    if isinstance(given, str) and given in CONDITIONING:
        return given
    recorded = section.get("conditional")
    if not isinstance(recorded, bool):
        return None
    return CLASS_CONDITIONAL if recorded else UNCONDITIONAL


def _count(value: Any) -> str:
    return str(int(value)) if value is not None and value == int(value) else NOT_RECORDED


def _classes(info: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """Whether the model is class-conditional (and so whether `genlab generate --class`
    applies), its classes, the per-class figures of its evaluation and its worst class."""
    section = as_mapping(metrics.get(PER_CLASS))
    rows = checked_per_class_rows(section)
    conditioning = _conditioning(info, section)
    names = class_names(info.get("class_names")) or (
        [row["class"] for row in rows] if rows else None
    )
    if rows is None and conditioning is None and not names and metrics.get(PER_CLASS) is None:
        stage = stage_instance("evaluate", "<model>", None)
        return (
            "Not measured: a model trained and evaluated before class conditioning; re-train "
            f"and evaluate it (`dvc repro {stage}`) for its classes and per-class figures."
        )
    listed = ", ".join(plain_text(name) for name in names) if names else NOT_RECORDED
    if conditioning == CLASS_CONDITIONAL:
        kind = (
            "yes: `genlab generate --class <name or index>` draws samples of one class; "
            "without it, samples cycle through the classes"
        )
    elif conditioning == UNCONDITIONAL:
        kind = (
            "no (model.conditioning=none): `--class` does not apply to this model; train a "
            "class-conditional variant (model.conditioning=class) to choose a sample's class"
        )
    else:
        kind = NOT_RECORDED
    accuracy = _percent(finite_number(metrics.get(CLASS_ACCURACY)))
    kid = _score(finite_number(metrics.get(INTRA_CLASS_KID)))
    drawn = (
        classes_drawn_note(checked_classes_drawn(section, len(rows)), len(rows)) if rows else None
    )
    if drawn:
        kid += f" (over the drawn classes only: {drawn})"
    lines = [  # the card's own Markdown; the class names were made plain text above
        "\n".join(
            [
                f"- **Class-conditional:** {kind}",
                f"- **Classes:** {listed}",
                f"- **Mean per-class accuracy:** {accuracy}",
                f"- **Mean intra-class KID:** {kid}",
            ]
        )
    ]
    if rows is None:
        lines.append(
            f"Per-class figures: {NOT_RECORDED} (an evaluation before they existed, an "
            "unlabelled dataset, or a malformed `per_class` in the metrics file)."
        )
        return "\n\n".join(lines)
    worst = worst_class(rows)
    table = [
        "| Class | Samples | Test images | Intra-class KID (lower is better) | Accuracy "
        "(higher is better) | Too close to a training image |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = plain_text(row["class"])
        table.append(
            f"| {f'**{name}** (worst)' if row['class'] == worst else name} "
            f"| {_count(row['samples'])} | {_count(row['test_images'])} "
            f"| {_score(row['kid_mean'])} | {_percent(row['accuracy'], 1)} "
            f"| {_percent(row['memorized_fraction'], 1)} |"
        )
    lines += ["\n".join(table), _worst_sentence(rows, worst)]
    return "\n\n".join(lines)


def _worst_sentence(rows: list[dict[str, Any]], worst: str | None) -> str:
    """The class the model does worst on, in words (metric_keys.worst_class's rule)."""
    if worst is None:
        return f"Worst class: {NOT_RECORDED} (no per-class accuracy or intra-class KID)."
    row = next(r for r in rows if r["class"] == worst)
    name = plain_text(worst)
    if row["samples"] is not None and row["samples"] < MIN_CLASS_SAMPLES:
        return (
            f"Worst class: {name} ({_count(row['samples'])} of the evaluated samples): the model "
            f"hardly ever draws {name}, so it has no intra-class KID for it."
        )
    if row["accuracy"] is not None:
        return (
            f"Worst class: {name} (accuracy {row['accuracy']:.2f}): samples asked for {name} "
            f"are classified as {name} only {row['accuracy']:.0%} of the time."
        )
    return (
        f"Worst class: {name} (highest intra-class KID, {_score(row['kid_mean'])}): the samples "
        f"the classifier assigns to {name} are the furthest from that class's test images."
    )


def _limitations(metrics: Mapping[str, Any]) -> str:
    """The limits of the numbers, true for the extractor that measured them."""
    extractor = metrics.get("extractor")
    known = extractor if isinstance(extractor, str) else "classifier"
    return LIMITATIONS.format(extractor=EXTRACTOR_LIMITS.get(known, EXTRACTOR_LIMITS["classifier"]))


def _memorization(report: Mapping[str, Any] | None) -> str:
    report = as_mapping(report)
    if not report:
        stage = stage_instance("evaluate", "<model>", None)
        return f"Not measured: evaluate this model (`dvc repro {stage}`) for the figures."
    rows = [
        "| Space | Threshold | Samples closer than threshold | Median distance to nearest "
        "training image (samples / real test) |",
        "|---|---|---|---|",
    ]
    extractor = plain_text(str(report.get("extractor")))
    for space, label in (("feature", f"features ({extractor})"), ("pixel", "pixels")):
        entry = as_mapping(report.get(space))
        rows.append(
            f"| {label} | {_score(entry.get('threshold'))} | "
            f"{_percent(entry.get('fraction_below_threshold'), 1)} | "
            f"{_score(entry.get('sample_nn_median'))} / {_score(entry.get('test_nn_median'))} |"
        )
    expected = _percent(report.get("expected_fraction_for_real_data"))
    note = (
        f"The threshold is the {expected} quantile of the distances from real test images to "
        f"their nearest training image, so a model that never copies puts about {expected} "
        f"of its samples under it; far more means samples reproduce training images. The "
        f"closest pairs are drawn in {_fmt(report.get('pairs_image'))}."
    )
    return "\n\n".join(["\n".join(rows), note])


def _exports(export: Mapping[str, Any]) -> str:
    rows = ["| Format | Path | Max abs diff vs eager |", "|---|---|---|"]
    for fmt, label in (("onnx", "ONNX"), ("torchscript", "TorchScript")):
        entry = export.get(fmt) or {}
        rows.append(f"| {label} | {_fmt(entry.get('path'))} | {_fmt(entry.get('max_abs_diff'))} |")
    num_classes = export.get(NUM_CLASSES)
    if not (is_number(num_classes) and num_classes == int(num_classes) and num_classes > 0):
        return "\n".join(rows)
    top = int(num_classes) - 1
    inputs = (
        f"Inputs: `z` (float32, batch x latent size) and `label` (int64, batch): class indices "
        f"in 0..{top}, in the order of the class list above. A label outside 0..{top} gives "
        f"images of NaN (a wrong label never gives a plausible image of another class); "
        f"`genlab generate --class` refuses it before running the graph."
    )
    return "\n\n".join(["\n".join(rows), inputs])


def _credentials(run_name: Any, signed: Mapping[str, Any] | None) -> str:
    """Who signed, what, and how a reader checks it: the fingerprint to compare and the command."""
    signed = signed or {}
    files = signed.get("files") or {}
    run = str(run_name) if _PLAIN_NAME.fullmatch(str(run_name or "")) else "<run>"
    folder = f"exports/{run}"
    intro = (
        "Every image genlab writes (such as the samples beside this card) and every model file "
        "of this export is signed with a C2PA content-credentials manifest: inside each PNG, and "
        "beside each model file as `<file>.c2pa`. A manifest binds the file's exact bytes to the "
        'claim "created by a trained model" (IPTC trainedAlgorithmicMedia), to this model and '
        "run, and to the signing certificate."
    )
    listed = ", ".join(
        f"{plain_text(str(name))} ({plain_text(str((entry or {}).get('manifest')))})"
        for name, entry in files.items()
    )
    rows = "\n".join(
        [
            "- **Trust anchor (root certificate) SHA-256:** "
            + _code(signed.get("trust_anchor_fingerprint")),
            "- **Signing certificate SHA-256:** " + _code(signed.get("signer_fingerprint")),
            "- **Signed model files:** " + (listed or NOT_RECORDED),
        ]
    )
    how = (
        "To verify, get the signer's root certificate (`root.pem` in their keys folder; "
        "`genlab keys show` prints its fingerprint) and compare its fingerprint with the trust "
        "anchor above before trusting it. Then run:\n\n"
        f"```bash\ngenlab verify {folder}/generator.onnx {folder}/samples.png "
        "--trust-anchor root.pem\n```\n\n"
        "Each file should read Trusted. A file changed by even one byte no longer verifies: "
        "it reads Invalid (`assertion.dataHash.mismatch`). A file whose manifest is missing "
        "proves nothing about where it came from."
    )
    return "\n\n".join([intro, rows, how])


def _code(fingerprint: Any) -> str:
    """A certificate fingerprint as code (copy-pasteable) when it has the expected form; any
    other text as plain text."""
    text = _fmt(fingerprint)
    return f"`{fingerprint}`" if _FINGERPRINT.fullmatch(str(fingerprint)) else text


def _config(config: Any) -> str:
    if not config:
        return NOT_RECORDED
    text = _to_yaml(config).rstrip()
    # a fence longer than any run of backticks inside, so no config value can close it
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}yaml\n{text}\n{fence}"


def _to_yaml(config: Any) -> str:
    """OmegaConf YAML as Hydra prints it; JSON for configs OmegaConf cannot hold."""
    try:
        return OmegaConf.to_yaml(OmegaConf.create(config))
    except Exception:  # omegaconf rejects some value types; the card must still render
        return json.dumps(config, indent=2, sort_keys=True, default=str)
