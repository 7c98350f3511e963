"""COCO box metrics, computed by pycocotools with microsoft/vision-evaluation's settings.

vision-evaluation's CocoMeanAveragePrecisionEvaluator keeps up to 300 detections per
image, one area range ("all") and averages precision over the categories that have a
ground-truth box (pycocotools marks the others -1). Ours: `map` over IoU 0.5:0.95 (the
primary), `map_50` and `map_75` from the same run, `map_30` from a run of its own (so it
does not move the 0.5:0.95 mean), `mar_300` (recall with 300 detections, over
0.5:0.95), and the AP of each class over 0.5:0.95 (None for a class without a box).
Crowd boxes are regions to ignore: a detection on one is neither right nor wrong.
"""

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

MAX_DETECTIONS = 300
COCO_IOUS = np.linspace(0.5, 0.95, 10)


@dataclass(frozen=True)
class ImageBoxes:
    """One image's ground truth and detections, boxes as (x1, y1, x2, y2) in pixels."""

    true_boxes: np.ndarray  # (n, 4)
    true_labels: np.ndarray  # (n,) class indices
    boxes: np.ndarray  # (m, 4) detections
    scores: np.ndarray  # (m,)
    labels: np.ndarray  # (m,)
    true_crowd: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class DetectionEvaluation:
    metrics: dict[str, float]
    per_class_ap: list[float | None]  # over IoU 0.5:0.95, by class index
    confusion_matrix: list[list[int]] = field(default_factory=list)  # none for detection
    # pycocotools' accumulated arrays, for the report's curves: precision (IoU 0.5:0.95,
    # 101 recall points, class), -1 for a class without a box; recall (IoU, class), the
    # highest recall reached with up to 300 detections per image.
    precision: np.ndarray = field(default_factory=lambda: np.zeros((len(COCO_IOUS), 101, 0)))
    recall: np.ndarray = field(default_factory=lambda: np.zeros((len(COCO_IOUS), 0)))


def _xywh(box: np.ndarray) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def _annotation(
    number: int, image: int, label: object, box: np.ndarray, **extra: object
) -> dict[str, object]:
    """One COCO annotation (truth or detection) of an x1y1x2y2 box."""
    xywh = _xywh(box)
    return {
        "id": number,
        "image_id": image,
        "category_id": int(label),  # type: ignore[call-overload]
        "bbox": xywh,
        "area": xywh[2] * xywh[3],
        **extra,
    }


def _coco(images: list[ImageBoxes], classes: int) -> tuple[COCO, COCO]:
    truth: list[dict[str, object]] = []
    found: list[dict[str, object]] = []
    for index, image in enumerate(images):
        crowd = image.true_crowd if len(image.true_crowd) else np.zeros(len(image.true_labels))
        for box, label, is_crowd in zip(image.true_boxes, image.true_labels, crowd, strict=True):
            truth.append(
                _annotation(len(truth) + 1, index, label, box, iscrowd=int(bool(is_crowd)))
            )
        for box, score, label in zip(image.boxes, image.scores, image.labels, strict=True):
            found.append(
                _annotation(len(found) + 1, index, label, box, iscrowd=0, score=float(score))
            )
    meta = {
        "images": [{"id": i} for i in range(len(images))],
        "categories": [{"id": c} for c in range(classes)],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it indexes
        ground = COCO()
        ground.dataset = dict(meta, annotations=truth)
        ground.createIndex()
        results = COCO()
        results.dataset = dict(meta, annotations=found)
        results.createIndex()
    return ground, results


def _evaluate(ground: COCO, results: COCO, ious: np.ndarray) -> COCOeval:
    evaluator = COCOeval(ground, results, "bbox")
    evaluator.params.iouThrs = ious
    evaluator.params.maxDets = [MAX_DETECTIONS]
    evaluator.params.areaRng = [[0.0, 1e5**2]]
    evaluator.params.areaRngLbl = ["all"]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator


def class_ap(precision: np.ndarray, index: int) -> float | None:
    """A class's AP from (some IoUs of) the precision array; None without a box."""
    cells = precision[..., index]
    return _mean(cells) if (cells > -1).any() else None


def _mean(values: np.ndarray) -> float:
    """pycocotools' summary: the mean over cells that exist (-1 marks a missing class)."""
    kept = values[values > -1]
    return float(np.mean(kept)) if kept.size else 0.0


def detection_metrics(images: list[ImageBoxes], classes: int) -> DetectionEvaluation:
    ground, results = _coco(images, classes)
    main = _evaluate(ground, results, COCO_IOUS)
    precision = main.eval["precision"][:, :, :, 0, 0]  # (iou, recall, class)
    recall = main.eval["recall"][:, :, 0, 0]  # (iou, class)
    at_30 = _evaluate(ground, results, np.array([0.3])).eval["precision"][:, :, :, 0, 0]
    metrics = {
        "map": _mean(precision),
        "map_50": _mean(precision[0]),
        "map_75": _mean(precision[5]),
        "map_30": _mean(at_30),
        "mar_300": _mean(recall),
    }
    per_class = [class_ap(precision, index) for index in range(classes)]
    return DetectionEvaluation(
        metrics=metrics, per_class_ap=per_class, precision=precision, recall=recall
    )
