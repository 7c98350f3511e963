"""Every metric the trainer reports, per task, and which way is better.

One table for both sides: the trainer keeps its best checkpoint by it, the search
ranks trials by it and the operator picks the job's result by it. A metric not in
the table has no known direction, so nothing may rank by it.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from tailor_contract.backbones import Task

Direction = Literal["Maximize", "Minimize"]

_SHARED: dict[str, Direction] = {
    "average_precision_macro": "Maximize",
    "average_precision_micro": "Maximize",
    "precision_macro": "Maximize",
    "recall_macro": "Maximize",
    "f1_macro": "Maximize",
    "precision_micro": "Maximize",
    "recall_micro": "Maximize",
    "f1_micro": "Maximize",
}
METRICS: dict[Task, dict[str, Direction]] = {
    "classification": {
        "top1_accuracy": "Maximize",
        "top5_accuracy": "Maximize",
        "calibration_ece": "Minimize",  # expected calibration error: 0 is perfect
        "log_loss": "Minimize",  # mean -log p(true class)
        **_SHARED,
    },
    "multilabel": {"accuracy": "Maximize", "log_loss": "Minimize", **_SHARED},
    # COCO box metrics with microsoft/vision-evaluation's settings (up to 300 detections
    # per image, area "all"): mAP over IoU 0.5:0.95, at 0.5, 0.75 and 0.3 (computed on its
    # own, so it does not move the 0.5:0.95 mean), and recall with 300 detections.
    "detection": {
        "map": "Maximize",
        "map_50": "Maximize",
        "map_75": "Maximize",
        "map_30": "Maximize",
        "mar_300": "Maximize",
    },
}
# What breaks a tie of the primary metric: on a small evaluation split accuracy moves in
# steps of 1/n, and two checkpoints or trials often score the same; the one whose
# probabilities fit the truth better (lower log loss) is the better bet.
TIEBREAK = "log_loss"
# Metrics that are a mean over the evaluation images of a score in [0, 1] per image
# (right or wrong for top-k accuracy; the overlap of label sets for multilabel's):
# sqrt(p(1-p)/n) bounds their standard error on n images, so the split's size says
# which differences it can resolve. For the others only an exact tie is a tie.
FRACTION_OF_IMAGES: frozenset[str] = frozenset({"top1_accuracy", "top5_accuracy", "accuracy"})
PRIMARY_METRIC: dict[Task, str] = {
    "classification": "top1_accuracy",
    "multilabel": "average_precision_macro",
    "detection": "map",
}
# The tasks this trainer can run; the CRD's enum and the operator's checks follow it.
TRAINABLE_TASKS: tuple[Task, ...] = tuple(METRICS)


def direction(task: Task, metric: str) -> Direction | None:
    """Which way is better for `metric` of `task`; None when the metric is unknown."""
    return METRICS.get(task, {}).get(metric)


def sign(task: Task, metric: str) -> float:
    """+1 where higher is better, -1 where lower is; ranking by an unknown metric is a bug."""
    found = direction(task, metric)
    if found is None:
        raise KeyError(f"no direction is known for metric {metric!r} of task {task!r}")
    return 1.0 if found == "Maximize" else -1.0


def resolution(metric: str, a: float, b: float, evaluated_on: int | None) -> float:
    """The smallest difference between `a` and `b` the evaluation split can tell from
    noise: one standard error of the difference of two fractions of `evaluated_on`
    images; 0 (only exact ties) for other metrics or an unknown split."""
    if metric not in FRACTION_OF_IMAGES or not evaluated_on:
        return 0.0
    variance = sum(min(1.0, max(0.0, p)) * (1.0 - min(1.0, max(0.0, p))) for p in (a, b))
    return math.sqrt(variance / evaluated_on)


@dataclass(frozen=True)
class Selection:
    """Which checkpoint, trial or rung result is the best, by one rule: of the
    candidates the evaluation split cannot tell from the top one (within one standard
    error of the difference, `resolution`), the lowest log loss; then the higher metric,
    then the earliest.
    On 20 images 0.90 against 0.85 is one image, not a better model: picking the 0.90
    exported a fine-tuning that scored 0.68 on held-out images (bench/fewshot.py, MNIST
    seed 2). The trainer keeps its checkpoint, the search promotes and the operator picks
    the job's result by this one rule."""

    metric: str
    way: float  # +1: higher is better, -1: lower is
    evaluated_on: int | None = None  # images in the evaluation split; None: unknown

    @classmethod
    def of(cls, task: Task, metric: str, evaluated_on: int | None) -> "Selection":
        return cls(metric, sign(task, metric), evaluated_on)

    def best(self, candidates: Sequence[Mapping[str, float]]) -> int:
        """The index of the best of `candidates` (metrics, each holding the metric)."""
        if not candidates:
            raise ValueError("Selection.best needs at least one candidate")
        values = [c[self.metric] for c in candidates]
        top = max(values, key=lambda v: self.way * v)
        close = [
            i
            for i, v in enumerate(values)
            if self.way * (top - v) <= resolution(self.metric, top, v, self.evaluated_on) + 1e-12
        ]
        # Without log losses to compare, the metric itself, then the earliest.
        return min(close, key=lambda i: (_loss(candidates[i]), -self.way * values[i], i))

    def order(self, candidates: Sequence[Mapping[str, float]]) -> list[int]:
        """Every candidate's index, best first: `best` of what is left, again."""
        left = list(range(len(candidates)))
        ranked: list[int] = []
        while left:
            picked = left[self.best([candidates[i] for i in left])]
            ranked.append(picked)
            left.remove(picked)
        return ranked


def _loss(metrics: Mapping[str, float]) -> float:
    loss = metrics.get(TIEBREAK)
    return loss if loss is not None else math.inf  # an evaluation without one loses ties


def metric_problem(task: str, metric: str | None) -> str | None:
    """Why `metric` cannot rank a `task` model, in words naming both; None if it can."""
    if task not in METRICS:
        trainable = ", ".join(TRAINABLE_TASKS)
        return f"task {task!r} is not supported by this trainer (supported: {trainable})"
    if metric is None:
        return None
    known = METRICS[task]
    if metric not in known:
        return f"metric {metric!r} is not reported for task {task!r}; one of: {', '.join(known)}"
    return None
