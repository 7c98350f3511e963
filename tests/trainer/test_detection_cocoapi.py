"""Our detection metrics reproduce cocoapi's own reference result on 100 COCO images
(the fixture files and their licences: tests/trainer/fixtures/cocoapi/NOTICE.md).

No image there has more than 39 detections, so our 300 per image and cocoapi's 100
give the same numbers; area range "all" is the one cocoapi's headline numbers use.
"""

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tailor_trainer.detection.metrics import ImageBoxes, detection_metrics

FIXTURES = Path(__file__).parent / "fixtures" / "cocoapi"
# cocoapi's results/val2014_fake_eval_res.txt, to the digits faster-coco-eval asserts.
EXPECTED = {"map": 0.5045806987249628, "map_50": 0.6969727247299577, "map_75": 0.5729816669904824}
EXPECTED_AR_100 = 0.595352982877607  # AR at 100 detections, over IoU 0.5:0.95


def _load(name: str) -> Any:
    with gzip.open(FIXTURES / name, "rt", encoding="utf-8") as file:
        return json.load(file)


def _xyxy(items: list[dict[str, Any]]) -> np.ndarray:
    boxes = [[x, y, x + w, y + h] for x, y, w, h in (item["bbox"] for item in items)]
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _images(order: str) -> tuple[list[ImageBoxes], int]:
    truth = _load("instances_val2014_100_boxes.json.gz")
    found = _load("instances_val2014_fakebbox100_results.json.gz")
    index = {c: i for i, c in enumerate(sorted(c["id"] for c in truth["categories"]))}
    images = sorted(truth["images"], key=lambda image: image["id"])
    if order == "reversed":
        images.reverse()
    cases = []
    for image in images:
        true = [a for a in truth["annotations"] if a["image_id"] == image["id"]]
        mine = [d for d in found if d["image_id"] == image["id"]]
        cases.append(
            ImageBoxes(
                true_boxes=_xyxy(true),
                true_labels=np.array([index[a["category_id"]] for a in true], dtype=np.int64),
                boxes=_xyxy(mine),
                scores=np.array([d["score"] for d in mine], dtype=np.float64),
                labels=np.array([index[d["category_id"]] for d in mine], dtype=np.int64),
                true_crowd=np.array([bool(a["iscrowd"]) for a in true], dtype=bool),
            )
        )
    return cases, len(index)


def test_the_metrics_reproduce_cocoapis_reference_result():
    cases, classes = _images("by id")
    assert (len(cases), classes) == (100, 80)
    assert sum(len(c.true_labels) for c in cases) == 839
    assert sum(len(c.scores) for c in cases) == 734
    result = detection_metrics(cases, classes)
    for name, value in EXPECTED.items():
        assert result.metrics[name] == pytest.approx(value, abs=1e-12), name
    assert result.metrics["mar_300"] == pytest.approx(EXPECTED_AR_100, abs=1e-12)
    # The per-class APs are the cells the mean is made of.
    present = [ap for ap in result.per_class_ap if ap is not None]
    assert np.mean(present) == pytest.approx(EXPECTED["map"], abs=1e-12)


def test_tied_scores_make_the_image_order_matter_a_little():
    # Equal scores on different images rank in image order (pycocotools' stable sort):
    # cocoapi's numbers hold for images in id order. Any other order moves map by at
    # most a tie's worth, never map_50 here.
    cases, classes = _images("reversed")
    metrics = detection_metrics(cases, classes).metrics
    assert metrics["map"] != pytest.approx(EXPECTED["map"], abs=1e-9)  # measured: -1.1e-5
    assert metrics["map"] == pytest.approx(EXPECTED["map"], abs=1e-4)
    assert metrics["map_50"] == pytest.approx(EXPECTED["map_50"], abs=1e-4)
