"""The detection report: rendered in a real browser, its numbers held against the
trainer's detection metrics, its matching and threshold checked by hand, and its
drawings checked pixel by pixel."""

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tailor_contract import SearchTrial
from tailor_trainer.detection.metrics import ImageBoxes, detection_metrics
from tailor_trainer.report import DetectionReportData, write_detection_report
from tailor_trainer.report import detection_stats as stats
from tailor_trainer.report.detection_document import chosen_images, compute
from tailor_trainer.report.detection_figures import (
    FALSE_COLOUR,
    HIT_COLOUR,
    MISSED_COLOUR,
    TRUE_COLOUR,
    Picture,
    draw_boxes,
)
from tests.trainer.browser import distinct_colours, render
from tests.trainer.detection_data import digits_document
from tests.trainer.test_detection_metrics import image_boxes
from tests.trainer.test_report import parse_page

TRICKY = 'owl <b>&"'
CLASSES = ["zero", "one", TRICKY]
SCREENSHOT = Path("/tmp/detection-report-screenshot.png")


def _detections(document: dict, seed: int) -> list[ImageBoxes]:
    """A fair detector's answers on generated digits: most boxes found (jittered), some
    with the wrong class, some missed, and a few false boxes."""
    rng = np.random.default_rng(seed)
    cases = []
    for record in document["images"]:
        items = [a for a in document["annotations"] if a["image_id"] == record["id"]]
        truth = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in items)])
        truth = truth.reshape(-1, 4).astype(float)
        labels = np.array([a["category_id"] - 1 for a in items], dtype=int)
        found, scores, classes = [], [], []
        for box, label in zip(truth, labels, strict=True):
            if rng.uniform() < 0.15:
                continue  # missed
            found.append(box + rng.normal(0, 1.2, 4))
            classes.append(int(label) if rng.uniform() < 0.85 else (int(label) + 1) % 3)
            scores.append(rng.uniform(0.45, 0.99))
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 60), rng.uniform(0, 50)
            found.append(np.array([x, y, x + 20, y + 20]))
            classes.append(int(rng.integers(0, 3)))
            scores.append(rng.uniform(0.05, 0.7))
        cases.append(image_boxes(truth, labels, found, scores, classes))
    return cases


def _search() -> list[SearchTrial]:
    return [
        SearchTrial(name="trial-0", model="resnet18", state="Succeeded", metric=0.41,
                    charged_gpu_seconds=300, promotions=1, ended="completed"),
        SearchTrial(name="trial-1 <i>", model="efficientnet_b0", state="Running",
                    charged_gpu_seconds=120),
        SearchTrial(name="trial-2", model="test_resnet", state="Succeeded", metric=0.12,
                    charged_gpu_seconds=40, ended="stopped early"),
    ]  # fmt: skip


def _data(folder: Path, images: int = 18, missing: bool = True) -> DetectionReportData:
    document = digits_document(folder, "eval", images, classes=3, seed=4)
    found = _detections(document, seed=7)
    pictures = {}
    for index in chosen_images(found):
        record = document["images"][index]
        data = (folder / record["file_name"]).read_bytes()
        pictures[index] = Picture(data, record["width"], record["height"])
    if missing:
        pictures.pop(next(iter(pictures)))  # shows as "image unavailable"
    return DetectionReportData(
        model="resnet18",
        classes=CLASSES,
        images=found,
        dataset_digest="sha256:" + "cd" * 32,
        gpu_seconds=130.5,
        trial="trial-1 <i>",
        step=300,
        search=_search(),
        pictures=pictures,
        image_names=[f"#{r['id']} {Path(r['file_name']).name}" for r in document["images"]],
    )


def test_the_detection_report_renders_in_a_real_browser(tmp_path):
    data = _data(tmp_path)
    written = write_detection_report(tmp_path, data)
    page = tmp_path / "report.html"
    assert written[-1] == page
    assert sorted(p.name for p in written[:-1]) == [
        "per_class_ap.png",
        "precision_recall.png",
        "search.png",
    ]
    rendered = render(page, tmp_path / "screenshot.png", height=3200)
    assert distinct_colours(rendered.screenshot) > 500
    shown = min(len(data.images), 24)
    assert rendered.images == 3 + shown - 1  # figures, every drawn image but the missing one
    assert rendered.images_ok, rendered.body.get("data-broken")
    assert rendered.console == []
    assert "owl &lt;b&gt;&amp;" in rendered.dom
    assert "<b>" not in rendered.dom
    assert "<i>" not in rendered.dom
    assert "image unavailable" in rendered.dom
    shutil.copyfile(rendered.screenshot, SCREENSHOT)


def test_the_page_is_self_contained_and_its_numbers_are_the_trainers(tmp_path):
    data = _data(tmp_path, missing=False)
    write_detection_report(tmp_path, data)
    html, cells = parse_page(tmp_path / "report.html")
    assert {"summary", "per-class", "precision-recall", "images", "search"} <= cells.ids
    assert all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
               for src in cells.images)  # fmt: skip
    assert "<script" not in html
    assert "http://" not in html
    assert TRICKY not in html
    metrics = detection_metrics(list(data.images), 3)
    for name, value in metrics.metrics.items():
        assert float(cells.values[(name, None)]) == pytest.approx(value, abs=1e-12), name
    assert float(cells.values[("ap", "2")]) == pytest.approx(metrics.per_class_ap[2])
    # AP50 of a class is the mAP50 of the same boxes with only that class kept.
    for c in range(3):
        alone = [
            image_boxes(
                image.true_boxes[image.true_labels == c],
                np.zeros((image.true_labels == c).sum(), dtype=int),
                image.boxes[image.labels == c],
                image.scores[image.labels == c],
                np.zeros((image.labels == c).sum(), dtype=int),
            )
            for image in data.images
        ]
        single = detection_metrics(alone, 1).metrics
        assert float(cells.values[("ap_50", str(c))]) == pytest.approx(single["map_50"])
        assert float(cells.values[("ap_75", str(c))]) == pytest.approx(single["map_75"])
    # The exported trial carries this export's map in the search table.
    exported = re.search(r'<tr class="exported"[^>]*>(.*?)</tr>', html)
    assert exported is not None
    assert f"{metrics.metrics['map']:.4f}" in exported.group(1)
    assert 0.3 < metrics.metrics["map_50"] < 0.95  # a case with right and wrong answers


def test_the_area_under_each_curve_is_its_ap(tmp_path):
    data = _data(tmp_path, missing=False)
    evaluation = compute(data).evaluation
    for c, ap in enumerate(evaluation.per_class_ap):
        assert np.clip(evaluation.precision[:, :, c], 0, None).mean() == pytest.approx(ap)


def test_matching_takes_the_best_free_box_in_score_order_and_ignores_crowds():
    image = image_boxes(
        [[0, 0, 10, 10], [50, 50, 90, 90], [100, 0, 110, 10]],
        [0, 0, 0],
        # 0.9 hits box 0; 0.8 is a duplicate of box 0 (false); 0.7 sits in the crowd
        # region (ignored); 0.6 has the wrong class (false); 0.5 hits box 2.
        [[0, 0, 10, 10], [1, 0, 11, 10], [55, 55, 70, 70], [100, 0, 110, 10], [101, 0, 110, 10]],
        [0.9, 0.8, 0.7, 0.6, 0.5],
        [0, 0, 0, 1, 0],
        crowd=[False, True, False],
    )
    matching = stats.match(image)
    assert matching.status.tolist() == [
        stats.HIT,
        stats.FALSE,
        stats.IGNORED,
        stats.FALSE,
        stats.HIT,
    ]
    assert matching.truth.tolist() == [0, -1, -1, -1, 2]
    errors = stats.image_errors(0, image, matching, threshold=0.55)
    assert (errors.boxes, errors.shown, errors.hits, errors.missed, errors.false) == (2, 3, 1, 1, 2)


def test_the_threshold_is_the_one_with_the_best_f1():
    # Scores 0.9 hit, 0.8 false, 0.7 hit, 0.3 false; 3 true boxes (one never found).
    # F1 by threshold: 0.9: 2/4; 0.8: 2/5; 0.7: 4/6; 0.3: 4/7. Best: 0.7.
    image = image_boxes(
        [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]],
        [0, 0, 0],
        [[0, 0, 10, 10], [60, 60, 70, 70], [20, 0, 30, 10], [80, 80, 90, 90]],
        [0.9, 0.8, 0.7, 0.3],
        [0, 0, 0, 0],
    )
    images = [image]
    assert stats.best_threshold(images, [stats.match(image)]) == pytest.approx(0.7)
    nothing = image_boxes([[0, 0, 10, 10]], [0], [[50, 50, 60, 60]], [0.9], [0])
    assert stats.best_threshold([nothing], [stats.match(nothing)]) == stats.DEFAULT_THRESHOLD


def test_the_grid_shows_the_images_with_the_most_errors_first():
    right = image_boxes([[0, 0, 10, 10]], [0], [[0, 0, 10, 10]], [0.9], [0])
    missed_two = image_boxes([[0, 0, 10, 10], [20, 0, 30, 10]], [0, 0])
    false_one = image_boxes([], [], [[0, 0, 10, 10]], [0.9], [0])
    images = [right, missed_two, false_one]
    worst = stats.worst_first(images, [stats.match(i) for i in images], 0.5)
    assert [item.index for item in worst] == [1, 2, 0]
    assert [item.errors for item in worst] == [2, 1, 0]


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def test_the_drawing_puts_true_and_predicted_boxes_where_they_are():
    # A 160 x 80 grey picture drawn at 320 x 160: boxes scale by 2.
    buffer = io.BytesIO()
    Image.new("RGB", (160, 80), (200, 200, 200)).save(buffer, format="PNG")
    picture = Picture(buffer.getvalue(), 160, 80)
    image = image_boxes(
        [[10, 10, 50, 50]],
        [0],
        [[10, 10, 50, 50], [100, 20, 140, 60]],
        [0.9, 0.8],
        [0, 1],
    )
    drawn = draw_boxes(picture, image, stats.match(image), 0.5, CLASSES)
    with Image.open(io.BytesIO(drawn)) as opened:
        assert opened.size == (320, 160)
        pixels = np.asarray(opened.convert("RGB")).astype(int)

    def near(y: int, x: int, colour: str) -> bool:
        return bool(np.abs(pixels[y, x] - _rgb(colour)).max() < 60)

    # The hit is drawn over the true box: its edge is blue; the false box's edge is red.
    assert near(60, 20, HIT_COLOUR)  # left edge of the hit, x = 10 * 2
    assert near(100, 200, FALSE_COLOUR)  # left edge of the false box, x = 100 * 2
    assert near(60, 60, "#c8c8c8")  # inside the hit: the picture
    # Below the threshold, only the truth is drawn, and it is missed: amber.
    truth_only = draw_boxes(picture, image, stats.match(image), 0.95, CLASSES)
    with Image.open(io.BytesIO(truth_only)) as opened:
        pixels = np.asarray(opened.convert("RGB")).astype(int)
    assert near(60, 20, MISSED_COLOUR)
    # A found true box is green: with the hit moved a pixel inside, its edge shows.
    inside = image_boxes([[10, 10, 50, 50]], [0], [[11, 11, 49, 49]], [0.9], [0])
    found = draw_boxes(picture, inside, stats.match(inside), 0.5, CLASSES)
    with Image.open(io.BytesIO(found)) as opened:
        pixels = np.asarray(opened.convert("RGB")).astype(int)
    assert near(60, 20, TRUE_COLOUR)
    assert near(100, 200, "#c8c8c8")
