"""Detection metrics: cases computed by hand, and parity with microsoft/vision-evaluation."""

from typing import Any

import numpy as np
import pytest

from tailor_trainer.detection.metrics import COCO_IOUS, ImageBoxes, detection_metrics


def image_boxes(truth, true_labels, found=(), scores=(), labels=(), crowd=None) -> ImageBoxes:
    return ImageBoxes(
        true_boxes=np.array(truth, dtype=float).reshape(-1, 4),
        true_labels=np.array(true_labels, dtype=int),
        boxes=np.array(found, dtype=float).reshape(-1, 4),
        scores=np.array(scores, dtype=float),
        labels=np.array(labels, dtype=int),
        true_crowd=np.array(crowd if crowd is not None else [False] * len(true_labels)),
    )


def test_perfect_detections_score_one():
    image = image_boxes(
        [[0, 0, 10, 10], [20, 20, 40, 30]],
        [0, 1],
        [[0, 0, 10, 10], [20, 20, 40, 30]],
        [0.9, 0.8],
        [0, 1],
    )
    result = detection_metrics([image], 2)
    assert result.metrics == pytest.approx(
        {"map": 1.0, "map_50": 1.0, "map_75": 1.0, "map_30": 1.0, "mar_300": 1.0}
    )
    assert result.per_class_ap == pytest.approx([1.0, 1.0])


def test_a_false_positive_ranked_between_two_hits():
    # Ranked: hit (P 1, R .5), miss, hit (P 2/3, R 1). COCO's 101 recall points: 51 of them
    # (0 to .50) at precision 1, 50 at 2/3.
    image = image_boxes(
        [[0, 0, 10, 10], [50, 50, 60, 60]],
        [0, 0],
        [[0, 0, 10, 10], [100, 100, 110, 110], [50, 50, 60, 60]],
        [0.9, 0.8, 0.7],
        [0, 0, 0],
    )
    expected = (51 + 50 * 2 / 3) / 101
    metrics = detection_metrics([image], 1).metrics
    assert metrics["map"] == pytest.approx(expected)
    assert metrics["map_50"] == pytest.approx(expected)
    assert metrics["mar_300"] == pytest.approx(1.0)


def test_a_loose_box_counts_only_at_the_thresholds_it_reaches():
    # IoU 0.62: a hit at 0.3, 0.5, 0.55 and 0.6; a miss from 0.65 on (3 of 10 thresholds).
    image = image_boxes([[0, 0, 10, 10]], [0], [[0, 0, 10, 6.2]], [0.9], [0])
    metrics = detection_metrics([image], 1).metrics
    assert metrics["map"] == pytest.approx(0.3)
    assert metrics["map_50"] == pytest.approx(1.0)
    assert metrics["map_75"] == pytest.approx(0.0)
    assert metrics["map_30"] == pytest.approx(1.0)
    assert metrics["mar_300"] == pytest.approx(0.3)


def test_map_30_does_not_change_the_coco_mean():
    # A box with IoU 0.4 is a hit at 0.3 only: map_30 is 1, map over 0.5:0.95 stays 0.
    image = image_boxes([[0, 0, 10, 10]], [0], [[0, 0, 10, 4]], [0.9], [0])
    metrics = detection_metrics([image], 1).metrics
    assert metrics["map_30"] == pytest.approx(1.0)
    assert metrics["map"] == pytest.approx(0.0)


def test_a_detection_on_a_crowd_region_is_neither_right_nor_wrong():
    truth = [[0, 0, 10, 10], [50, 50, 90, 90]]
    found = [[52, 52, 88, 88], [0, 0, 10, 10]]
    crowd = image_boxes(truth, [0, 0], found, [0.95, 0.9], [0, 0], crowd=[False, True])
    assert detection_metrics([crowd], 1).metrics["map"] == pytest.approx(1.0)
    # The same box not marked crowd: a hit that must be found, and a loose first guess.
    plain = image_boxes([[0, 0, 10, 10]], [0], found, [0.95, 0.9], [0, 0])
    assert detection_metrics([plain], 1).metrics["map"] < 1.0


def test_classes_without_a_box_are_left_out_of_the_mean():
    image = image_boxes(
        [[0, 0, 10, 10]], [0], [[0, 0, 10, 10], [30, 30, 40, 40]], [0.9, 0.8], [0, 2]
    )
    result = detection_metrics([image], 3)
    assert result.metrics["map"] == pytest.approx(1.0)
    assert result.per_class_ap == [pytest.approx(1.0), None, None]


def test_detections_on_an_image_without_boxes_are_false_positives():
    hit = image_boxes([[0, 0, 10, 10]], [0], [[0, 0, 10, 10]], [0.5], [0])
    negative = image_boxes([], [], [[0, 0, 10, 10]], [0.9], [0])
    # Ranked: the negative's false positive first (P 0), then the hit (P 1/2 at R 1).
    assert detection_metrics([hit, negative], 1).metrics["map"] == pytest.approx(0.5)


def test_at_most_300_detections_per_image_count():
    # 300 misses rank above the hit: with 300 detections kept, the hit is never reached.
    misses = [[100 + i, 100, 101 + i, 101] for i in range(300)]
    image = image_boxes(
        [[0, 0, 10, 10]], [0], [*misses, [0, 0, 10, 10]], [0.9] * 300 + [0.1], [0] * 301
    )
    assert detection_metrics([image], 1).metrics["mar_300"] == pytest.approx(0.0)


def _random_case(seed: int, classes: int = 4, images: int = 12):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(images):
        count = int(rng.integers(0, 6))
        xy = rng.uniform(0, 200, size=(count, 2))
        wh = rng.uniform(8, 80, size=(count, 2))
        truth = np.concatenate([xy, xy + wh], axis=1)
        labels = rng.integers(0, classes, size=count)
        # Detections: jittered copies of most boxes, some with a wrong class, plus noise.
        keep = rng.uniform(size=count) < 0.8
        jitter = rng.normal(0, 6, size=(count, 4))
        found = (truth + jitter)[keep]
        found_labels = np.where(rng.uniform(size=count) < 0.85, labels, (labels + 1) % classes)[
            keep
        ]
        extra = int(rng.integers(0, 4))
        exy = rng.uniform(0, 200, size=(extra, 2))
        found = np.concatenate([found, np.concatenate([exy, exy + 30], axis=1)])
        found[:, 2:] = np.maximum(found[:, 2:], found[:, :2] + 1)
        found_labels = np.concatenate([found_labels, rng.integers(0, classes, size=extra)])
        scores = rng.uniform(0.05, 1.0, size=len(found))
        cases.append(image_boxes(truth, labels, found, scores, found_labels))
    return cases


def _vision_evaluation(cases: list[ImageBoxes], ious: Any) -> dict[str, Any]:
    evaluators = pytest.importorskip("vision_evaluation.evaluators")
    evaluator = evaluators.CocoMeanAveragePrecisionEvaluator(ious=list(ious))
    targets = [
        [
            [int(label), *map(float, box)]
            for box, label in zip(c.true_boxes, c.true_labels, strict=False)
        ]
        for c in cases
    ]
    predictions = [
        [
            [int(label), float(score), *map(float, box)]
            for box, score, label in zip(c.boxes, c.scores, c.labels, strict=True)
        ]
        for c in cases
    ]
    evaluator.add_predictions(predictions, targets)
    report: dict[str, Any] = evaluator.get_report()
    return report


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_metrics_are_vision_evaluations(seed):
    cases = _random_case(seed)
    ours = detection_metrics(cases, 4).metrics
    theirs = _vision_evaluation(cases, COCO_IOUS)
    assert ours["map"] == pytest.approx(theirs["avg_mAP"], abs=1e-9)
    assert ours["map_50"] == pytest.approx(theirs["mAP_50"], abs=1e-9)
    assert ours["map_75"] == pytest.approx(theirs["mAP_75"], abs=1e-9)
    at_30 = _vision_evaluation(cases, [0.3])
    assert ours["map_30"] == pytest.approx(at_30["mAP_30"], abs=1e-9)
    assert 0.05 < ours["map"] < 0.95  # a case that tells right from wrong
