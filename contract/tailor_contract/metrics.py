"""Every metric the trainer reports, per task, and which way is better.

One table for both sides: the trainer keeps its best checkpoint by it, the search
ranks trials by it and the operator picks the job's result by it. A metric not in
the table has no known direction, so nothing may rank by it.
"""

import math
from collections.abc import Mapping
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


def rank_key(task: Task, metric: str, metrics: Mapping[str, float]) -> tuple[float, float]:
    """Larger is better: the primary metric in its direction, then the lower log loss
    (an evaluation without one loses the tie). The trainer keeps its best checkpoint,
    the search promotes and the operator picks the job's result by this one key."""
    loss = metrics.get(TIEBREAK)
    return sign(task, metric) * metrics[metric], -loss if loss is not None else -math.inf


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
