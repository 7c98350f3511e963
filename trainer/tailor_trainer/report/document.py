"""What a report is made of (plain data), and writing it: report.html and report/*.png."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from tailor_contract import SearchTrial
from tailor_trainer.metrics import Evaluation, classification_metrics, multilabel_metrics
from tailor_trainer.report import figures, stats
from tailor_trainer.report.search import search_view

HTML_NAME = "report.html"
MAX_MISTAKES = 48


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, as plain data; no model, no storage.

    probabilities: (N, C) softmax probabilities (classification) or independent sigmoid
    scores (multilabel) of the exported weights on the evaluation split; targets: (N,)
    class indices or (N, C) 0/1 rows. thumbnails: small JPEG or PNG images by position
    in the evaluation split (the mistakes'); a missing one shows as "image unavailable".
    """

    model: str
    task: str  # classification | multilabel
    classes: Sequence[str]
    probabilities: np.ndarray
    targets: np.ndarray
    primary_metric: str = "top1_accuracy"
    dataset_digest: str = ""
    gpu_seconds: float | None = None  # calibrated GPU-seconds the exported trial spent
    threshold: float = 0.5  # multilabel decisions
    trial: str | None = None  # the exported trial's name, highlighted in the search
    step: int | None = None  # the step of the exported checkpoint
    search: Sequence[SearchTrial] = ()
    thumbnails: Mapping[int, bytes] = field(default_factory=dict)
    image_names: Sequence[str] = ()  # per evaluation image, e.g. its file name
    max_mistakes: int = MAX_MISTAKES
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    def check(self) -> None:
        shape = self.probabilities.shape
        if len(shape) != 2 or shape[0] == 0:
            raise ValueError(f"probabilities must be (N > 0, C), not {shape}")
        if shape[1] != len(self.classes):
            raise ValueError(f"{shape[1]} probability columns for {len(self.classes)} classes")
        if len(self.targets) != shape[0]:
            raise ValueError(f"{len(self.targets)} targets for {shape[0]} predictions")


@dataclass(frozen=True)
class Computed:
    """The numbers and figures the page shows, computed once from ReportData."""

    evaluation: Evaluation
    per_class: stats.PerClass
    per_class_title: str
    mistakes: list[stats.Mistake]
    wrong: int  # every wrong image, not only those shown
    matrix: np.ndarray | None  # classification only
    reliability: stats.Reliability | None  # classification only
    search: list[tuple[SearchTrial, bool]]  # (trial as shown, is the exported one)
    unplotted: int  # trials with no metric yet
    figures: dict[str, bytes]  # file name -> PNG


def compute(data: ReportData) -> Computed:
    data.check()
    scores = np.asarray(data.probabilities, dtype=np.float64)
    classes = list(data.classes)
    if data.multilabel:
        targets = np.asarray(data.targets)
        evaluation = multilabel_metrics(scores, targets, data.threshold)
    else:
        targets = np.asarray(data.targets).astype(np.int64)
        evaluation = classification_metrics(scores, targets)
    per_class = stats.per_class(scores, targets, data.multilabel, data.threshold)
    pngs: dict[str, bytes] = {}
    matrix = reliability = None
    if not data.multilabel:
        matrix = stats.confusion(scores, targets)
        reliability = stats.reliability(scores, targets)
        pngs["confusion_matrix.png"] = figures.confusion_matrix_png(matrix, classes)
    pngs["per_class.png"], title = figures.per_class_png(per_class, classes)
    if reliability is not None:
        pngs["reliability.png"] = figures.reliability_png(reliability)
    shown = stats.mistakes(scores, targets, data.multilabel, data.threshold, data.max_mistakes)
    wrong = int(stats.wrong(scores, targets, data.multilabel, data.threshold).sum())
    value = evaluation.metrics.get(data.primary_metric)
    rows, unplotted, png = search_view(
        data.search, data.trial, data.model, data.gpu_seconds, data.primary_metric, value
    )
    if png is not None:
        pngs["search.png"] = png
    return Computed(
        evaluation=evaluation,
        per_class=per_class,
        per_class_title=title,
        mistakes=shown,
        wrong=wrong,
        matrix=matrix,
        reliability=reliability,
        search=rows,
        unplotted=unplotted,
        figures=pngs,
    )
