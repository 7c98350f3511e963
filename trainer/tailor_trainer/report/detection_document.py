"""What a detection report is made of (plain data: boxes and pictures, no model), and
the numbers and figures computed from it once.

The metrics are the trainer's own (detection.metrics.detection_metrics on the same
boxes), so a number in the page and the same number in the result document agree.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tailor_contract import SearchTrial
from tailor_trainer.detection.metrics import DetectionEvaluation, ImageBoxes, detection_metrics
from tailor_trainer.report import detection_figures as figures
from tailor_trainer.report import detection_stats as stats
from tailor_trainer.report.detection_figures import Picture
from tailor_trainer.report.search import Rows, search_view

MAX_IMAGES = 24


@dataclass(frozen=True)
class DetectionReportData:
    """Everything the detection report shows.

    images: each evaluation image's truth and detections (the exported weights, the
    shared post-processing: scores from 0.05, up to 300 per image), boxes in the image's
    own pixels. pictures: by evaluation position, the images the grid shows (chosen with
    `chosen_images`); a missing one shows as "image unavailable".
    """

    model: str
    classes: Sequence[str]
    images: Sequence[ImageBoxes]
    primary_metric: str = "map"
    dataset_digest: str = ""
    gpu_seconds: float | None = None
    trial: str | None = None
    step: int | None = None
    search: Sequence[SearchTrial] = ()
    pictures: Mapping[int, Picture] = field(default_factory=dict)
    image_names: Sequence[str] = ()
    max_images: int = MAX_IMAGES
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def check(self) -> None:
        if not self.images:
            raise ValueError("a detection report needs at least one evaluation image")
        for image in self.images:
            for labels in (image.true_labels, image.labels):
                if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(
                    self.classes
                ):
                    raise ValueError(f"a class index outside 0..{len(self.classes) - 1}")


@dataclass(frozen=True)
class DetectionComputed:
    evaluation: DetectionEvaluation
    threshold: float  # the score from which the grid draws detections (best F1 at IoU 0.5)
    rows: list[stats.ClassRow]
    shown: list[stats.ImageErrors]  # the grid, worst first
    drawn: dict[int, bytes]  # evaluation position -> JPEG with its boxes
    errors: int  # images with a missed or false box at the threshold, of all
    search: Rows
    unplotted: int
    figures: dict[str, bytes]  # file name -> PNG
    per_class_title: str
    curves_title: str


def matchings(images: Sequence[ImageBoxes]) -> list[stats.Matching]:
    return [stats.match(image) for image in images]


def chosen_images(images: Sequence[ImageBoxes], limit: int = MAX_IMAGES) -> list[int]:
    """The evaluation positions the grid will show: what a collector must read."""
    found = list(images)
    matched = matchings(found)
    threshold = stats.best_threshold(found, matched)
    return [item.index for item in stats.worst_first(found, matched, threshold)[:limit]]


def compute(data: DetectionReportData) -> DetectionComputed:
    data.check()
    images = list(data.images)
    classes = list(data.classes)
    evaluation = detection_metrics(images, len(classes))
    matched = matchings(images)
    threshold = stats.best_threshold(images, matched)
    rows = stats.class_rows(evaluation, images, matched, threshold, len(classes))
    ordered = stats.worst_first(images, matched, threshold)
    shown = ordered[: data.max_images]
    errors = sum(item.errors > 0 for item in ordered)
    drawn = {
        item.index: figures.draw_boxes(
            data.pictures[item.index], images[item.index], matched[item.index], threshold, classes
        )
        for item in shown
        if item.index in data.pictures
    }
    pngs: dict[str, bytes] = {}
    pngs["per_class_ap.png"], per_class_title = figures.per_class_ap_png(rows, classes)
    curves_title = ""
    if any(row.ap is not None for row in rows):
        pngs["precision_recall.png"], curves_title = figures.precision_recall_png(
            evaluation.precision, rows, classes
        )
    value = evaluation.metrics.get(data.primary_metric)
    search, unplotted, png = search_view(
        data.search, data.trial, data.model, data.gpu_seconds, data.primary_metric, value
    )
    if png is not None:
        pngs["search.png"] = png
    return DetectionComputed(
        evaluation=evaluation,
        threshold=threshold,
        rows=rows,
        shown=shown,
        drawn=drawn,
        errors=errors,
        search=search,
        unplotted=unplotted,
        figures=pngs,
        per_class_title=per_class_title,
        curves_title=curves_title,
    )
