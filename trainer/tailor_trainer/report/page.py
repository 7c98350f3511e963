"""The report as one self-contained HTML page: figures and thumbnails are data URIs,
the style is inline, there is no script and nothing is fetched from anywhere.

Every string that comes from a user (class names, model and trial names, image names,
the search's words) goes through html.escape; numbers are formatted here.
"""

import base64
import math
from collections.abc import Iterable, Sequence
from html import escape

from tailor_contract import SearchTrial
from tailor_trainer.metrics import ECE_BINS
from tailor_trainer.report.document import (
    FIGURES_FOLDER,
    Computed,
    ReportData,
    search_kind,
)
from tailor_trainer.report.figures import ANNOTATE_UP_TO, LABEL_UP_TO, dimensions
from tailor_trainer.report.stats import Mistake

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1f2328;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 0 0 12px; padding-bottom: 6px; border-bottom: 1px solid #d8dce1; }
h3 { font-size: 16px; margin: 18px 0 8px; }
section, header { background: #fff; border: 1px solid #d8dce1; border-radius: 8px;
  padding: 18px 22px; margin: 0 0 20px; }
.subtitle { color: #57606a; margin: 0 0 14px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px; margin: 0; }
dl.facts dt { color: #57606a; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.primary { font-size: 22px; font-weight: 600; }
code { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; background: #f1f3f5;
  padding: 1px 4px; border-radius: 4px; overflow-wrap: anywhere; }
nav { margin: 0 0 20px; display: flex; flex-wrap: wrap; gap: 8px; }
nav a { background: #fff; border: 1px solid #d8dce1; border-radius: 16px; padding: 3px 12px;
  color: #0b5cad; text-decoration: none; font-size: 14px; }
figure.chart { margin: 8px 0 12px; }
figure.chart img { display: block; max-width: 100%; height: auto; }
figure.chart figcaption { color: #57606a; font-size: 13px; margin-top: 4px; }
table { border-collapse: collapse; font-size: 14px; margin: 6px 0 12px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e7eb; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
tfoot td { font-weight: 600; background: #f6f8fa; }
tr.exported td { background: #fff6dd; }
.note { color: #57606a; font-size: 14px; }
.skipped { background: #f6f8fa; border-left: 4px solid #b0b7c0; padding: 8px 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
.mistake { border: 1px solid #e4e7eb; border-radius: 6px; padding: 8px; margin: 0;
  background: #fff; font-size: 13px; }
.mistake img, .mistake .missing { display: block; width: 128px; height: 128px;
  object-fit: contain; margin: 0 auto 6px; background: #eef0f2; image-rendering: auto; }
.mistake .missing { display: flex; align-items: center; justify-content: center;
  color: #57606a; text-align: center; font-size: 12px; }
.mistake figcaption { overflow-wrap: anywhere; }
.wrong { color: #b42318; }
.right { color: #1a7f37; }
.muted { color: #57606a; }
.none { font-size: 16px; color: #1a7f37; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #0b5cad; }
footer { color: #57606a; font-size: 13px; text-align: center; }
"""

METRIC_NAMES = {
    "top1_accuracy": "top-1 accuracy",
    "top5_accuracy": "top-5 accuracy",
    "accuracy": "accuracy (per image: shared labels over all labels)",
    "average_precision_macro": "AP, macro",
    "average_precision_micro": "AP, micro",
    "calibration_ece": "expected calibration error",
    "precision_macro": "precision, macro",
    "recall_macro": "recall, macro",
    "f1_macro": "F1, macro",
    "precision_micro": "precision, micro",
    "recall_micro": "recall, micro",
    "f1_micro": "F1, micro",
}


def number(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.{digits}f}"


def percent(value: float) -> str:
    return f"{value:.1%}"


def _data_uri(image: bytes) -> str:
    kind = "image/png" if image.startswith(b"\x89PNG") else "image/jpeg"
    return f"data:{kind};base64,{base64.b64encode(image).decode('ascii')}"


def _img(image: bytes, alt: str, attributes: str = "") -> str:
    size = ""
    if image.startswith(b"\x89PNG"):
        width, height = dimensions(image)
        size = f' width="{width}" height="{height}"'
    return f'<img src="{_data_uri(image)}" alt="{escape(alt)}"{size}{attributes}>'


def _chart(computed: Computed, name: str, alt: str, caption: str = "") -> str:
    png = computed.figures.get(name)
    if png is None:
        return ""
    link = f"{FIGURES_FOLDER}/{name}"
    note = f"{caption} " if caption else ""
    return (
        f'<figure class="chart" id="figure-{name.removesuffix(".png")}">{_img(png, alt)}'
        f"<figcaption>{escape(note)}Also beside this page as <code>{escape(link)}</code>."
        "</figcaption></figure>"
    )


def _rows(rows: Iterable[Sequence[str]]) -> str:
    return "".join("<tr>" + "".join(row) + "</tr>" for row in rows)


def _td(text: str, css: str = "", attributes: str = "") -> str:
    """A cell of already escaped or formatted text."""
    klass = f' class="{css}"' if css else ""
    return f"<td{klass}{attributes}>{text}</td>"


def _num(value: float | None, metric: str = "", column: int | None = None) -> str:
    attributes = ""
    if metric:
        raw = "" if value is None or math.isnan(value) else repr(float(value))
        attributes = f' data-metric="{metric}" data-value="{raw}"'
        if column is not None:
            attributes += f' data-class="{column}"'
    return _td(number(value), "num", attributes)


def header(data: ReportData, computed: Computed) -> str:
    metrics = computed.evaluation.metrics
    value = metrics.get(data.primary_metric)
    classes = ", ".join(escape(name) for name in data.classes)
    if len(data.classes) > 12:
        classes = f"<details><summary>show all</summary>{classes}</details>"
    facts = [
        ("model", f"<code>{escape(data.model)}</code>"),
        ("task", escape(data.task)),
        ("classes", f"{len(data.classes)} {classes}"),
        ("dataset digest", f"<code>{escape(data.dataset_digest or 'unknown')}</code>"),
        (
            "primary metric",
            f'<span class="primary" id="primary-metric" data-metric="{escape(data.primary_metric)}"'
            f' data-value="{"" if value is None else repr(value)}">'
            f"{escape(METRIC_NAMES.get(data.primary_metric, data.primary_metric))}: "
            f"{number(value)}</span>",
        ),
        (
            "GPU-seconds spent",
            "unknown"
            if data.gpu_seconds is None
            else f'<span id="gpu-seconds">{data.gpu_seconds:,.1f}</span> calibrated GPU-seconds '
            "(the exported trial, up to its exported checkpoint)",
        ),
        ("evaluation images", f"{len(data.probabilities):,}"),
    ]
    if data.trial:
        facts.append(("trial", escape(data.trial)))
    if data.step is not None:
        facts.append(("checkpoint step", f"{data.step:,}"))
    if data.search:
        charged = sum(trial.charged_gpu_seconds for trial in data.search)
        facts.append(
            (
                "search",
                f"{len(data.search)} trials, {charged:,.1f} GPU-seconds charged "
                "when this attempt started",
            )
        )
    facts.append(("created", escape(data.created)))
    listing = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    table = _rows(
        [f"<th>{escape(METRIC_NAMES.get(name, name))}</th>", _num(value, name)]
        for name, value in metrics.items()
    )
    return (
        '<header id="summary"><h1>Evaluation report</h1>'
        f'<p class="subtitle">{escape(data.model)} on the evaluation split, the exported weights'
        f'</p><dl class="facts">{listing}</dl>'
        f'<details open><summary>every metric</summary><table id="metrics">{table}</table>'
        "</details></header>"
    )


def confusion_section(data: ReportData, computed: Computed) -> str:
    if computed.matrix is None:
        return (
            '<section id="confusion-matrix"><h2>Confusion matrix</h2><p class="skipped">'
            "Not shown for a multilabel task: each class is its own yes/no decision, so there "
            "is no single predicted class to confuse. See the per-class table.</p></section>"
        )
    from tailor_trainer.report.stats import top_confusions

    pairs = top_confusions(computed.matrix)
    classes = data.classes
    if pairs:
        body = _rows(
            [
                _td(escape(classes[true])),
                _td(escape(classes[predicted])),
                _td(str(count), "num"),
                _td(percent(count / max(1, int(computed.matrix[true].sum()))), "num"),
            ]
            for true, predicted, count in pairs
        )
        table = (
            "<h3>Most frequent confusions</h3><table><thead><tr><th>true class</th>"
            '<th>predicted as</th><th class="num">images</th>'
            f'<th class="num">share of the true class</th></tr></thead><tbody>{body}</tbody>'
            "</table>"
        )
    else:
        table = '<p class="none">No confusions: every evaluation image is on the diagonal.</p>'
    caption = "Rows are true classes, columns predicted ones, coloured by the share of the row"
    if len(classes) <= ANNOTATE_UP_TO:
        caption += "; cells show counts."
    elif len(classes) <= LABEL_UP_TO:
        caption += f"; with {len(classes)} classes the counts are left to the table below."
    else:
        caption += (
            f"; with {len(classes)} classes the axes are in the order of the per-class table, "
            "unlabelled, and the counts are left to the table below."
        )
    chart = _chart(computed, "confusion_matrix.png", "confusion matrix", caption)
    return f'<section id="confusion-matrix"><h2>Confusion matrix</h2>{chart}{table}</section>'


def per_class_section(data: ReportData, computed: Computed) -> str:
    stats, metrics = computed.per_class, computed.evaluation.metrics
    body = _rows(
        [
            f"<th>{escape(name)}</th>",
            _num(float(stats.precision[c]), "precision", c),
            _num(float(stats.recall[c]), "recall", c),
            _num(float(stats.f1[c]), "f1", c),
            _num(float(stats.average_precision[c]), "ap", c),
            _td(str(int(stats.support[c])), "num", f' data-metric="support" data-class="{c}"'),
            _td(str(int(stats.predicted[c])), "num"),
        ]
        for c, name in enumerate(data.classes)
    )
    support = int(stats.support.sum())
    footer = _rows(
        [
            [
                _td(f"{kind} average"),
                _num(metrics.get(f"precision_{kind}"), f"precision_{kind}"),
                _num(metrics.get(f"recall_{kind}"), f"recall_{kind}"),
                _num(metrics.get(f"f1_{kind}"), f"f1_{kind}"),
                _num(metrics.get(f"average_precision_{kind}"), f"average_precision_{kind}"),
                _td(str(support) if kind == "macro" else "", "num"),
                _td("", "num"),
            ]
            for kind in ("macro", "micro")
        ]
    )
    decision = (
        f"a class is predicted when its score is at least {data.threshold:g}"
        if data.multilabel
        else "the predicted class is the top-1 class"
    )
    table = (
        '<table id="per-class-table"><thead><tr><th>class</th><th class="num">precision</th>'
        '<th class="num">recall</th><th class="num">F1</th><th class="num">AP</th>'
        '<th class="num">support</th><th class="num">predicted</th></tr></thead>'
        f"<tbody>{body}</tbody><tfoot>{footer}</tfoot></table>"
        f'<p class="note">Decisions: {decision}. AP is one-vs-rest average precision over the '
        "scores (— for a class with no evaluation image). The averages are the trial's "
        "metrics: macro precision averages every class, macro recall and AP the classes "
        "with evaluation images, and F1 is the harmonic mean of the averaged precision and "
        "recall (vision-evaluation's convention), so it can differ from the mean of the "
        "per-class F1.</p>"
    )
    chart = _chart(computed, "per_class.png", computed.per_class_title)
    return (
        '<section id="per-class"><h2>Per-class precision, recall, F1 and AP</h2>'
        f"{table}{chart}</section>"
    )


def reliability_section(computed: Computed) -> str:
    bins = computed.reliability
    if bins is None:
        return (
            '<section id="reliability"><h2>Reliability diagram</h2><p class="skipped">'
            "Not shown for a multilabel task: expected calibration error is defined here on the "
            "top-1 confidence of a single-label classifier.</p></section>"
        )
    rows = _rows(
        [
            _td(f"({lower:.3f}, {upper:.3f}]"),
            _td(str(int(count)), "num"),
            _td(number(float(confidence)), "num"),
            _td(number(float(accuracy)), "num"),
            _td(number(abs(accuracy - confidence) if count else None), "num"),
        ]
        for lower, upper, count, confidence, accuracy in zip(
            bins.edges[:-1],
            bins.edges[1:],
            bins.counts,
            bins.confidence,
            bins.accuracy,
            strict=True,
        )
    )
    chart = _chart(
        computed,
        "reliability.png",
        f"reliability diagram, ECE {bins.ece:.4f}",
        "Bars: accuracy of the images in each top-1 confidence bin; dots: their mean "
        "confidence; dashed: perfect calibration. Below: images per bin.",
    )
    return (
        '<section id="reliability"><h2>Reliability diagram</h2>'
        f'<p>Expected calibration error: <strong id="ece" data-value="{bins.ece!r}">'
        f"{bins.ece:.4f}</strong> — {ECE_BINS} equal-width bins of top-1 confidence, each "
        "(lower, upper], weighted by their images: the same binning as the trial's "
        f"<code>calibration_ece</code>.</p>{chart}"
        f'<details><summary>the bins</summary><table id="reliability-bins"><thead><tr>'
        '<th>confidence</th><th class="num">images</th><th class="num">mean confidence</th>'
        '<th class="num">accuracy</th><th class="num">gap</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></details></section>"
    )


def _labels(data: ReportData, labels: Sequence[tuple[int, float]], scored: bool) -> str:
    if not labels:
        return '<span class="muted">nothing</span>'
    names = []
    for index, score in labels:
        name = f"<strong>{escape(data.classes[index])}</strong>"
        names.append(f"{name} {percent(score)}" if scored else name)
    return ", ".join(names)


def _mistake(data: ReportData, mistake: Mistake) -> str:
    name = (
        data.image_names[mistake.index]
        if mistake.index < len(data.image_names)
        else f"image {mistake.index}"
    )
    thumbnail = data.thumbnails.get(mistake.index)
    picture = (
        _img(thumbnail, name)
        if thumbnail
        else '<div class="missing" role="img" aria-label="image unavailable">'
        "image unavailable</div>"
    )
    truth = ", ".join(
        f"<strong>{escape(data.classes[c])}</strong>"
        + (f' <span class="muted">(p {percent(score)})</span>' if not data.multilabel else "")
        for c, score in mistake.truth
    )
    return (
        f'<figure class="mistake" data-index="{mistake.index}">{picture}<figcaption>'
        f'<div class="wrong">predicted {_labels(data, mistake.predicted, True)}</div>'
        f'<div class="right">true {truth or "<span class=muted>nothing</span>"}</div>'
        f'<div class="muted">{escape(name)}</div></figcaption></figure>'
    )


def mistakes_section(data: ReportData, computed: Computed) -> str:
    total = len(data.probabilities)
    if not computed.mistakes:
        body = '<p class="none" id="no-mistakes">No mistakes: every evaluation image is right.</p>'
    else:
        shown = len(computed.mistakes)
        order = (
            "the most confident mistakes first"
            if not data.multilabel
            else "the most confident wrong decision first (a false label's score, or one "
            "minus a missed label's)"
        )
        which = f"the first {shown}" if shown < computed.wrong else "all"
        body = (
            f"<p>{computed.wrong:,} of {total:,} evaluation images are wrong "
            f"({percent(computed.wrong / total)}); {which} shown, {order}.</p>"
            '<div class="grid">'
            + "".join(_mistake(data, mistake) for mistake in computed.mistakes)
            + "</div>"
        )
    return f'<section id="mistakes"><h2>Wrong images</h2>{body}</section>'


def _search_row(trial: SearchTrial, exported: bool) -> str:
    name = escape(trial.name) + (" <strong>(exported)</strong>" if exported else "")
    css = ' class="exported"' if exported else ""
    cells = [
        _td(name),
        _td(f"<code>{escape(trial.model)}</code>"),
        _td(escape(trial.recipe)),
        _td(escape(trial.state)),
        _td(number(trial.metric), "num"),
        _td(f"{trial.charged_gpu_seconds:,.1f}", "num"),
        _td(str(trial.promotions), "num"),
        _td(escape(trial.ended)),
    ]
    return f'<tr{css} data-kind="{escape(search_kind(trial))}">{"".join(cells)}</tr>'


def search_section(data: ReportData, computed: Computed) -> str:
    if not computed.search:
        return (
            '<section id="search"><h2>Search</h2><p class="note">This attempt was given no '
            "search trials (a trial run on its own).</p></section>"
        )
    rows = "".join(_search_row(trial, exported) for trial, exported in computed.search)
    unplotted = (
        f" {computed.unplotted} trial(s) with no metric yet are in the table only."
        if computed.unplotted
        else ""
    )
    chart = _chart(
        computed,
        "search.png",
        "the search's trials: metric against charged GPU-seconds",
        "Triangles: promoted trials; crosses: stopped early; circles: the others; the star is "
        f"the exported trial.{unplotted}",
    )
    return (
        '<section id="search"><h2>Search</h2>'
        f'<p class="note">The search\'s trials when this attempt started, best '
        f"{escape(data.primary_metric)} first. The exported trial shows this export's metric "
        f"and GPU-seconds.</p>{chart}"
        '<table id="search-table"><thead><tr><th>trial</th><th>model</th><th>recipe</th>'
        '<th>state</th><th class="num">metric</th><th class="num">charged GPU-s</th>'
        '<th class="num">promotions</th><th>why it ended</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def render(data: ReportData, computed: Computed) -> str:
    sections = [
        ("confusion-matrix", "Confusion matrix"),
        ("per-class", "Per class"),
        ("reliability", "Reliability"),
        ("mistakes", "Wrong images"),
        ("search", "Search"),
    ]
    navigation = "".join(f'<a href="#{anchor}">{title}</a>' for anchor, title in sections)
    body = "".join(
        [
            header(data, computed),
            f"<nav>{navigation}</nav>",
            confusion_section(data, computed),
            per_class_section(data, computed),
            reliability_section(computed),
            mistakes_section(data, computed),
            search_section(data, computed),
        ]
    )
    title = escape(f"Evaluation report: {data.model}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head>"
        f"<body><main>{body}<footer>Written by tailor-train; the figures are also PNG files "
        f"in <code>{FIGURES_FOLDER}/</code> beside this page.</footer></main></body></html>\n"
    )
