"""The numbers behind the detection report, from boxes alone (plain numpy, no model).

Which boxes an image's drawing shows, and which it calls right or wrong, follows COCO's
matching at IoU 0.5: per image and class, detections in score order each take the
unmatched true box they overlap most (IoU >= 0.5); one on a crowd region is neither
right nor wrong. Matching in score order means a score threshold only cuts the tail:
what a kept detection matched does not depend on the threshold, so one matching serves
every threshold (and the threshold of the best F1 is read off one sorted list).
"""

from dataclasses import dataclass

import numpy as np

from tailor_trainer.detection.metrics import COCO_IOUS, DetectionEvaluation, ImageBoxes, class_ap

MATCH_IOU = 0.5
HIT, FALSE, IGNORED = 1, 0, -1
DEFAULT_THRESHOLD = 0.5  # predict's --min-confidence, when no threshold has a hit


@dataclass(frozen=True)
class ClassRow:
    """A class's line of the per-class table; APs are None without a true box."""

    ap: float | None  # IoU 0.5:0.95
    ap_50: float | None
    ap_75: float | None
    recall_50: float | None  # the highest recall at IoU 0.5, up to 300 detections per image
    boxes: int  # true boxes (crowd regions left out)
    shown: int  # detections at or above the report's threshold
    hits: int  # of those, right at IoU 0.5


@dataclass(frozen=True)
class Matching:
    """One image's detections matched to its truth at IoU 0.5."""

    status: np.ndarray  # per detection: HIT, FALSE or IGNORED
    truth: np.ndarray  # per detection: the true box it matched, -1 if none


@dataclass(frozen=True)
class ImageErrors:
    """What an image's drawing shows at the report's threshold."""

    index: int  # position in the evaluation split
    boxes: int  # true boxes, crowd regions left out
    shown: int  # detections drawn
    hits: int
    missed: int  # true boxes no drawn detection found
    false: int  # drawn detections that found nothing

    @property
    def errors(self) -> int:
        return self.missed + self.false


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of x1y1x2y2 boxes."""
    left = np.maximum(a[:, None, :2], b[None, :, :2])
    right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(right - left, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    result: np.ndarray = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    return result


def _inside(a: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(len(a), len(regions)) share of each box inside each region (COCO's crowd rule)."""
    left = np.maximum(a[:, None, :2], regions[None, :, :2])
    right = np.minimum(a[:, None, 2:], regions[None, :, 2:])
    inter = np.clip(right - left, 0, None).prod(axis=2)
    area = (a[:, 2:] - a[:, :2]).prod(axis=1)[:, None]
    result: np.ndarray = np.divide(inter, area, out=np.zeros(inter.shape), where=area > 0)
    return result


def crowd_of(image: ImageBoxes) -> np.ndarray:
    if len(image.true_crowd) == len(image.true_labels):
        return image.true_crowd.astype(bool)
    return np.zeros(len(image.true_labels), dtype=bool)


def match(image: ImageBoxes, threshold: float = MATCH_IOU) -> Matching:
    status = np.full(len(image.scores), FALSE, dtype=np.int64)
    matched = np.full(len(image.scores), -1, dtype=np.int64)
    crowd = crowd_of(image)
    for label in np.unique(image.labels):
        found = np.flatnonzero(image.labels == label)
        found = found[np.argsort(-image.scores[found], kind="stable")]
        true = np.flatnonzero((image.true_labels == label) & ~crowd)
        regions = np.flatnonzero((image.true_labels == label) & crowd)
        overlaps = iou(image.boxes[found], image.true_boxes[true])
        inside = _inside(image.boxes[found], image.true_boxes[regions])
        taken = np.zeros(len(true), dtype=bool)
        for row, detection in enumerate(found):
            candidates = np.where(taken, -1.0, overlaps[row]) if len(true) else np.zeros(0)
            if len(candidates) and candidates.max() >= threshold:
                best = int(np.argmax(candidates))
                taken[best] = True
                status[detection], matched[detection] = HIT, true[best]
            elif len(regions) and inside[row].max() >= threshold:
                status[detection] = IGNORED
    return Matching(status, matched)


def best_threshold(images: list[ImageBoxes], matchings: list[Matching]) -> float:
    """The score threshold with the best F1 at IoU 0.5 over the split (the lowest score
    that reaches it); DEFAULT_THRESHOLD when nothing is ever right."""
    scores = np.concatenate([image.scores for image in images] + [np.zeros(0)])
    status = np.concatenate([m.status for m in matchings] + [np.zeros(0, dtype=np.int64)])
    boxes = sum(int((~crowd_of(image)).sum()) for image in images)
    counted = status != IGNORED
    scores, status = scores[counted], status[counted]
    if not (status == HIT).any() or boxes == 0:
        return DEFAULT_THRESHOLD
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], np.cumsum(status[order] == HIT)
    kept = np.arange(1, len(scores) + 1)
    f1 = 2 * hits / (kept + boxes)
    # A threshold keeps every detection with its score: only the last of equal scores counts.
    last = np.append(scores[1:] != scores[:-1], True)
    best = int(np.argmax(np.where(last, f1, -1.0)))
    return float(scores[best])


def image_errors(
    index: int, image: ImageBoxes, matching: Matching, threshold: float
) -> ImageErrors:
    shown = image.scores >= threshold
    hits = int(((matching.status == HIT) & shown).sum())
    boxes = int((~crowd_of(image)).sum())
    return ImageErrors(
        index=index,
        boxes=boxes,
        shown=int((shown & (matching.status != IGNORED)).sum()),
        hits=hits,
        missed=boxes - hits,
        false=int(((matching.status == FALSE) & shown).sum()),
    )


def worst_first(
    images: list[ImageBoxes], matchings: list[Matching], threshold: float
) -> list[ImageErrors]:
    """Every image, the most errors (missed plus false boxes) at the threshold first,
    then the most boxes; evaluation order breaks ties. Right images come last, so a
    good model's grid still shows what it finds."""
    every = [
        image_errors(index, image, matching, threshold)
        for index, (image, matching) in enumerate(zip(images, matchings, strict=True))
    ]
    every.sort(key=lambda item: (-item.errors, -item.boxes, item.index))
    return every


def class_rows(
    evaluation: DetectionEvaluation,
    images: list[ImageBoxes],
    matchings: list[Matching],
    threshold: float,
    classes: int,
) -> list[ClassRow]:
    precision, recall = evaluation.precision, evaluation.recall
    at_50 = int(np.argmin(np.abs(COCO_IOUS - 0.5)))
    at_75 = int(np.argmin(np.abs(COCO_IOUS - 0.75)))
    labels = np.concatenate([image.labels for image in images] + [np.zeros(0, dtype=np.int64)])
    scores = np.concatenate([image.scores for image in images] + [np.zeros(0)])
    status = np.concatenate([m.status for m in matchings] + [np.zeros(0, dtype=np.int64)])
    true = np.concatenate(
        [image.true_labels[~crowd_of(image)] for image in images] + [np.zeros(0, dtype=np.int64)]
    )
    rows = []
    for index in range(classes):
        shown = (labels == index) & (scores >= threshold) & (status != IGNORED)
        has_boxes = index < precision.shape[-1] and (precision[..., index] > -1).any()
        rows.append(
            ClassRow(
                ap=evaluation.per_class_ap[index] if index < len(evaluation.per_class_ap) else None,
                ap_50=class_ap(precision[at_50], index) if has_boxes else None,
                ap_75=class_ap(precision[at_75], index) if has_boxes else None,
                recall_50=float(recall[at_50, index]) if has_boxes else None,
                boxes=int((true == index).sum()),
                shown=int(shown.sum()),
                hits=int((shown & (status == HIT)).sum()),
            )
        )
    return rows
