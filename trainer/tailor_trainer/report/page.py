"""The report as one self-contained HTML page: figures and thumbnails are data URIs,
the style is inline, there is no script and nothing is fetched from anywhere.

Every string that comes from a user (class names, model and trial names, image names,
the search's words) goes through html.escape; numbers are formatted here.
"""

from collections.abc import Sequence
from html import escape

from tailor_trainer.metrics import ECE_BINS
from tailor_trainer.report.document import Computed, ReportData
from tailor_trainer.report.figures import ANNOTATE_UP_TO, LABEL_UP_TO
from tailor_trainer.report.html import (
    chart,
    img,
    num,
    number,
    page,
    percent,
    rows,
    summary,
    td,
)
from tailor_trainer.report.search import search_section
from tailor_trainer.report.stats import Mistake

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


def header(data: ReportData, computed: Computed) -> str:
    return summary(
        data,
        data.task,
        computed.evaluation.metrics,
        METRIC_NAMES,
        f"{len(data.probabilities):,}",
        f"{escape(data.model)} on the evaluation split, the exported weights",
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
        body = rows(
            [
                td(escape(classes[true])),
                td(escape(classes[predicted])),
                td(str(count), "num"),
                td(percent(count / max(1, int(computed.matrix[true].sum()))), "num"),
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
    figure = chart(computed.figures, "confusion_matrix.png", "confusion matrix", caption)
    return f'<section id="confusion-matrix"><h2>Confusion matrix</h2>{figure}{table}</section>'


def per_class_section(data: ReportData, computed: Computed) -> str:
    stats, metrics = computed.per_class, computed.evaluation.metrics
    body = rows(
        [
            f"<th>{escape(name)}</th>",
            num(float(stats.precision[c]), "precision", c),
            num(float(stats.recall[c]), "recall", c),
            num(float(stats.f1[c]), "f1", c),
            num(float(stats.average_precision[c]), "ap", c),
            td(str(int(stats.support[c])), "num", f' data-metric="support" data-class="{c}"'),
            td(str(int(stats.predicted[c])), "num"),
        ]
        for c, name in enumerate(data.classes)
    )
    support = int(stats.support.sum())
    footer = rows(
        [
            [
                td(f"{kind} average"),
                num(metrics.get(f"precision_{kind}"), f"precision_{kind}"),
                num(metrics.get(f"recall_{kind}"), f"recall_{kind}"),
                num(metrics.get(f"f1_{kind}"), f"f1_{kind}"),
                num(metrics.get(f"average_precision_{kind}"), f"average_precision_{kind}"),
                td(str(support) if kind == "macro" else "", "num"),
                td("", "num"),
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
    figure = chart(computed.figures, "per_class.png", computed.per_class_title)
    return (
        '<section id="per-class"><h2>Per-class precision, recall, F1 and AP</h2>'
        f"{table}{figure}</section>"
    )


def reliability_section(computed: Computed) -> str:
    bins = computed.reliability
    if bins is None:
        return (
            '<section id="reliability"><h2>Reliability diagram</h2><p class="skipped">'
            "Not shown for a multilabel task: expected calibration error is defined here on the "
            "top-1 confidence of a single-label classifier.</p></section>"
        )
    bins_rows = rows(
        [
            td(f"({lower:.3f}, {upper:.3f}]"),
            td(str(int(count)), "num"),
            td(number(float(confidence)), "num"),
            td(number(float(accuracy)), "num"),
            td(number(abs(accuracy - confidence) if count else None), "num"),
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
    figure = chart(
        computed.figures,
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
        f"<code>calibration_ece</code>.</p>{figure}"
        f'<details><summary>the bins</summary><table id="reliability-bins"><thead><tr>'
        '<th>confidence</th><th class="num">images</th><th class="num">mean confidence</th>'
        '<th class="num">accuracy</th><th class="num">gap</th></tr></thead>'
        f"<tbody>{bins_rows}</tbody></table></details></section>"
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
        img(thumbnail, name)
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


def render(data: ReportData, computed: Computed) -> str:
    search = search_section(
        computed.search, computed.unplotted, computed.figures, data.primary_metric
    )
    return page(
        data.model,
        [
            ("", "", header(data, computed)),
            ("confusion-matrix", "Confusion matrix", confusion_section(data, computed)),
            ("per-class", "Per class", per_class_section(data, computed)),
            ("reliability", "Reliability", reliability_section(computed)),
            ("mistakes", "Wrong images", mistakes_section(data, computed)),
            ("search", "Search", search),
        ],
    )
