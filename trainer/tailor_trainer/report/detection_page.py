"""The detection report as one self-contained HTML page, built from the same pieces as
classification's (report.html): data URIs, inline style, no script, every user string
escaped."""

from html import escape

from tailor_trainer.report.detection_document import DetectionComputed, DetectionReportData
from tailor_trainer.report.detection_figures import (
    CROWD_COLOUR,
    FALSE_COLOUR,
    HIT_COLOUR,
    MISSED_COLOUR,
    TRUE_COLOUR,
)
from tailor_trainer.report.detection_stats import ImageErrors
from tailor_trainer.report.html import chart, img, num, page, rows, summary, td
from tailor_trainer.report.search import search_section

METRIC_NAMES = {
    "map": "mAP, IoU 0.5:0.95",
    "map_50": "mAP, IoU 0.5",
    "map_75": "mAP, IoU 0.75",
    "map_30": "mAP, IoU 0.3",
    "mar_300": "mean recall, 300 detections per image, IoU 0.5:0.95",
}
DETECTION_CSS = """
.grid.boxes { grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); }
.boxes .mistake img, .boxes .mistake .missing { width: 100%; height: auto; max-width: 320px;
  aspect-ratio: auto; }
.boxes .mistake .missing { height: 200px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px;
  vertical-align: -1px; margin: 0 4px 0 10px; }
"""


def header(data: DetectionReportData, computed: DetectionComputed) -> str:
    boxes = sum(row.boxes for row in computed.rows)
    detections = sum(len(image.scores) for image in data.images)
    return summary(
        data,
        "detection",
        computed.evaluation.metrics,
        METRIC_NAMES,
        f"{len(data.images):,} with {boxes:,} true boxes; {detections:,} detections scored "
        "(score from 0.05, up to 300 per image)",
        f"{escape(data.model)} detecting on the evaluation split, the exported weights",
        '<p class="note">COCO box metrics by pycocotools with vision-evaluation\'s settings: '
        "up to 300 detections per image, one area range (all), classes without a true box "
        "left out of the means; crowd boxes are regions a detection may hit without being "
        "right or wrong.</p>",
    )


def per_class_section(data: DetectionReportData, computed: DetectionComputed) -> str:
    body = rows(
        [
            f"<th>{escape(name)}</th>",
            num(row.ap, "ap", c),
            num(row.ap_50, "ap_50", c),
            num(row.ap_75, "ap_75", c),
            num(row.recall_50, "recall_50", c),
            td(str(row.boxes), "num", f' data-metric="boxes" data-class="{c}"'),
            td(str(row.shown), "num", f' data-metric="shown" data-class="{c}"'),
            td(str(row.hits), "num", f' data-metric="hits" data-class="{c}"'),
        ]
        for c, (name, row) in enumerate(zip(data.classes, computed.rows, strict=True))
    )
    metrics = computed.evaluation.metrics
    footer = rows(
        [
            [
                td("mean over classes with boxes"),
                num(metrics.get("map"), "map"),
                num(metrics.get("map_50"), "map_50"),
                num(metrics.get("map_75"), "map_75"),
                td("", "num"),
                td(str(sum(row.boxes for row in computed.rows)), "num"),
                td(str(sum(row.shown for row in computed.rows)), "num"),
                td(str(sum(row.hits for row in computed.rows)), "num"),
            ]
        ]
    )
    threshold = f"{computed.threshold:.3f}"
    table = (
        '<table id="per-class-table"><thead><tr><th>class</th><th class="num">AP</th>'
        '<th class="num">AP50</th><th class="num">AP75</th><th class="num">recall at IoU 0.5'
        '</th><th class="num">true boxes</th>'
        f'<th class="num">detections &ge; {threshold}</th><th class="num">of them right</th>'
        f"</tr></thead><tbody>{body}</tbody><tfoot>{footer}</tfoot></table>"
        '<p class="note">AP is averaged over IoU 0.5:0.95 (the primary), AP50 and AP75 at one '
        "IoU; — for a class with no true box. Recall at IoU 0.5 is the highest reached with "
        f"every detection. The last two columns count detections from the score {threshold} "
        "(the threshold of the best F1 at IoU 0.5 on this split, the one the images below "
        "are drawn at) and those that found a true box.</p>"
    )
    figure = chart(computed.figures, "per_class_ap.png", computed.per_class_title)
    return f'<section id="per-class"><h2>Per-class AP</h2>{table}{figure}</section>'


def curves_section(computed: DetectionComputed) -> str:
    if "precision_recall.png" not in computed.figures:
        return (
            '<section id="precision-recall"><h2>Precision-recall curves</h2>'
            '<p class="skipped">No class has a true box in the evaluation split.</p></section>'
        )
    figure = chart(
        computed.figures,
        "precision_recall.png",
        computed.curves_title,
        "pycocotools' interpolated precision (the best precision at this recall or beyond) at "
        "its 101 recall points; it is 0 past the highest recall reached. The area under each "
        "curve is that AP: the thick one's is the class's AP over IoU 0.5:0.95.",
    )
    return f'<section id="precision-recall"><h2>Precision-recall curves</h2>{figure}</section>'


def _legend() -> str:
    entries = [
        (TRUE_COLOUR, "true box, found"),
        (MISSED_COLOUR, "true box, missed"),
        (HIT_COLOUR, "detection, right at IoU 0.5"),
        (FALSE_COLOUR, "detection that found nothing"),
        (CROWD_COLOUR, "crowd region"),
    ]
    return "".join(
        f'<span class="swatch" style="background:{colour}"></span>{text}'
        for colour, text in entries
    )


def _card(data: DetectionReportData, computed: DetectionComputed, item: ImageErrors) -> str:
    name = (
        data.image_names[item.index]
        if item.index < len(data.image_names)
        else f"image {item.index}"
    )
    drawn = computed.drawn.get(item.index)
    picture = (
        img(drawn, name)
        if drawn
        else '<div class="missing" role="img" aria-label="image unavailable">'
        "image unavailable</div>"
    )
    verdict = "wrong" if item.errors else "right"
    return (
        f'<figure class="mistake" data-index="{item.index}" data-missed="{item.missed}" '
        f'data-false="{item.false}">{picture}<figcaption>'
        f'<div class="{verdict}">{item.boxes} true, {item.shown} detected: {item.hits} right, '
        f"{item.missed} missed, {item.false} false</div>"
        f'<div class="muted">{escape(name)}</div></figcaption></figure>'
    )


def images_section(data: DetectionReportData, computed: DetectionComputed) -> str:
    total = len(data.images)
    shown = len(computed.shown)
    body = (
        f"<p>Detections drawn from the score {computed.threshold:.3f} (best F1 at IoU 0.5). "
        f"{computed.errors:,} of {total:,} evaluation images have a missed or false box at it; "
        f"{'all' if shown == total else f'{shown}'} shown, the most errors first.</p>"
        f'<p class="note">{_legend()}</p><div class="grid boxes">'
        + "".join(_card(data, computed, item) for item in computed.shown)
        + "</div>"
    )
    return f'<section id="images"><h2>Evaluation images</h2>{body}</section>'


def render(data: DetectionReportData, computed: DetectionComputed) -> str:
    search = search_section(
        computed.search, computed.unplotted, computed.figures, data.primary_metric
    )
    return page(
        data.model,
        [
            ("", "", header(data, computed)),
            ("per-class", "Per class", per_class_section(data, computed)),
            ("precision-recall", "Precision-recall", curves_section(computed)),
            ("images", "Images", images_section(data, computed)),
            ("search", "Search", search),
        ],
        DETECTION_CSS,
    )
