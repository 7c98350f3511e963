"""Detection datasets: the box rules validation applies (each problem named with its
image and annotation), EXIF orientation, and the letterbox pipeline's boxes."""

import io
import json
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from PIL import Image

from tailor_contract import ExitCode
from tailor_trainer.cache import CachedReader
from tailor_trainer.coco import ImageEntry, parse_split
from tailor_trainer.data import DataConfig, open_upright
from tailor_trainer.detection.annotations import Box
from tailor_trainer.detection.data import DetectionImages, collate
from tailor_trainer.problems import Problems
from tailor_trainer.storage import Storage
from tailor_trainer.validate import ValidateOptions, validate
from tests.trainer.detection_data import digits_document, write_digits


def _parse(document: dict[str, Any], name: str = "train") -> tuple[Any, Problems]:
    problems = Problems()
    split = parse_split(name, "/d/train.json", json.dumps(document).encode(), "detection", problems)
    return split, problems


def _document(
    boxes: list[tuple[Any, int, dict[str, Any]]],
    width: int = 100,
    height: int = 50,
    categories: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    return {
        "images": [{"id": 7, "file_name": "a.png", "width": width, "height": height}],
        "annotations": [
            {"id": 100 + i, "image_id": 7, "category_id": c, "bbox": b, **extra}
            for i, (b, c, extra) in enumerate(boxes)
        ],
        "categories": [{"id": c, "name": f"c{c}"} for c in categories],
    }


def test_pixel_boxes_are_kept_and_images_without_boxes_are_negatives():
    document = _document([([10, 5, 20, 10], 1, {})])
    document["images"].append({"id": 8, "file_name": "b.png", "width": 100, "height": 50})
    split, problems = _parse(document)
    assert problems.ok, problems.error_examples
    first, negative = split.images
    assert first.boxes == (Box(100, 0, 10.0, 5.0, 20.0, 10.0),)
    assert first.labels == (0,)
    assert (negative.labels, negative.boxes) == ((), ())


def test_relative_boxes_of_a_file_become_pixels():
    split, problems = _parse(_document([([0.1, 0.2, 0.5, 0.4], 1, {})], width=200, height=100))
    assert problems.ok
    box = split.images[0].boxes[0]
    assert (box.x, box.y, box.w, box.h) == pytest.approx((20, 20, 100, 40))


@pytest.mark.parametrize(
    ("bbox", "kind"),
    [
        ([1, 2, 3], "bad_box"),
        ([1, 2, "3", 4], "bad_box"),
        ([1, 2, float("nan"), 4], "bad_box"),
        ([10, 10, 0, 5], "bad_box"),
        ([10, 10, 5, -1], "bad_box"),
        ([90, 10, 15, 5], "box_outside_image"),  # 5 px past the right edge
        ([-3, 10, 15, 5], "box_outside_image"),
        (None, "bad_box"),
    ],
)
def test_a_bad_box_is_named_with_its_image_and_annotation(bbox, kind):
    document = _document([([10, 10, 5, 5], 1, {})])
    document["annotations"].append({"id": 555, "image_id": 7, "category_id": 1, "bbox": bbox})
    # json.dumps writes NaN, which json.loads reads back: the check is the parser's.
    _split, problems = _parse(document)
    assert set(problems.errors) == {kind}
    assert "annotation 555 on image 7" in problems.error_examples[0]


def test_a_box_within_a_pixel_outside_is_clipped():
    split, problems = _parse(_document([([-0.5, 10, 20, 40.8], 1, {})]))
    assert problems.ok, problems.error_examples
    box = split.images[0].boxes[0]
    assert (box.x, box.y, box.x + box.w, box.y + box.h) == pytest.approx((0, 10, 19.5, 50))


def test_unknown_categories_and_missing_sizes_are_refused():
    document = _document([([10, 10, 5, 5], 9, {})])
    document["images"].append({"id": 8, "file_name": "b.png"})
    _, problems = _parse(document)
    assert set(problems.errors) == {"unknown_category", "missing_field"}
    assert any("image 8 needs positive integer 'width'" in p for p in problems.error_examples)


def test_crowd_boxes_are_kept_as_regions_without_a_label():
    split, problems = _parse(_document([([10, 10, 5, 5], 1, {"iscrowd": 1})]))
    assert problems.ok
    entry = split.images[0]
    assert entry.boxes[0].crowd
    assert entry.labels == ()


def _validate(folder: Path, train: dict, evaluation: dict | None = None):
    (folder / "train.json").write_text(json.dumps(train))
    options: dict[str, Any] = {
        "annotations": str(folder / "train.json"),
        "task": "detection",
        "workers": 2,
    }
    if evaluation is not None:
        (folder / "eval.json").write_text(json.dumps(evaluation))
        options["evaluation"] = str(folder / "eval.json")
    return validate(Storage(), ValidateOptions(**options))


def test_a_generated_detection_dataset_validates(tmp_path):
    train = digits_document(tmp_path, "train", 12, seed=0)
    evaluation = digits_document(tmp_path, "eval", 6, seed=1)
    report = _validate(tmp_path, train, evaluation)
    assert report.code == ExitCode.SUCCESS, report.result.problems
    assert report.result.dataset.classes == 3


def test_a_class_needs_two_training_images_and_evaluation_a_box(tmp_path):
    train = digits_document(tmp_path, "train", 12, seed=0)
    keep = next(a for a in train["annotations"] if a["category_id"] == 3)
    train["annotations"] = [
        a for a in train["annotations"] if a["category_id"] != 3 or a["id"] == keep["id"]
    ]
    evaluation = digits_document(tmp_path, "eval", 4, seed=1)
    evaluation["annotations"] = []
    report = _validate(tmp_path, train, evaluation)
    assert report.code == ExitCode.DATASET_CORRUPT
    assert report.result.problem_counts == {"too_few_images": 1, "empty_split": 1}
    assert any("no box to score" in p for p in report.result.problems)


def _rotated_png(path: Path, width: int, height: int) -> None:
    """A width x height picture stored on its side, EXIF orientation 6 (turn 90 clockwise)."""
    stored = Image.new("RGB", (height, width), (200, 200, 200))
    stored.paste((255, 0, 0), (0, 0, 12, 12))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, "JPEG", exif=exif.tobytes(), quality=100)


def test_declared_sizes_are_the_upright_image(tmp_path):
    train = digits_document(tmp_path, "train", 12, seed=0)
    _rotated_png(tmp_path / "train" / "0000.png", 96, 80)  # stored 80 wide, 96 high
    train["annotations"] = [a for a in train["annotations"] if a["image_id"] != 1]
    assert _validate(tmp_path, train).code == ExitCode.SUCCESS
    train["images"][0]["width"], train["images"][0]["height"] = 80, 96  # the stored size
    report = _validate(tmp_path, train)
    assert report.result.problem_counts == {"image_size_mismatch": 1}
    assert "image 1" in report.result.problems[0]


def test_training_sees_the_image_upright(tmp_path):
    _rotated_png(tmp_path / "r.jpg", 96, 80)
    upright = open_upright((tmp_path / "r.jpg").read_bytes())
    assert upright.size == (96, 80)
    red = cast(
        tuple[int, int, int], upright.getpixel((90, 5))
    )  # the stored top-left, turned to the top-right
    assert red[0] > 200
    assert red[1] < 80


class _Reader:
    def __init__(self, width: int, height: int) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, "PNG")
        self.data = buffer.getvalue()

    def read(self, uri: str) -> bytes:
        return self.data


CONFIG = DataConfig(64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear", 1.0)


def test_evaluation_letterboxes_and_boxes_map_back_by_the_scale():
    entry = ImageEntry(
        1, "x", (0,), 200, 100, (Box(5, 0, 20, 10, 50, 40), Box(6, 0, 1, 1, 9, 9, True))
    )
    image, target = DetectionImages(
        (entry,), cast(CachedReader, _Reader(200, 100)), CONFIG, False, 0.0
    )[0]
    assert image.shape == (3, 64, 64)
    assert float(target["scale"]) == pytest.approx(64 / 200)
    assert target["boxes"][0].tolist() == pytest.approx([6.4, 3.2, 22.4, 16.0])
    assert (target["boxes"][0] / target["scale"]).tolist() == pytest.approx([20, 10, 70, 50])
    assert target["crowd"].tolist() == [False, True]
    # Below the picture (rows 32 to 63) is padding: zero after normalisation.
    assert image[:, 40:, :].abs().max() <= 1.0 + 1e-6


def test_training_augments_boxes_with_the_image_and_drops_crowds():
    entry = ImageEntry(
        1, "x", (0,), 200, 100, (Box(5, 0, 20, 10, 50, 40), Box(6, 0, 150, 50, 40, 40, True))
    )
    images = DetectionImages((entry,), cast(CachedReader, _Reader(200, 100)), CONFIG, True, 1.0)
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        image, target = images[0]
        assert image.shape == (3, 64, 64)
        boxes = target["boxes"]
        assert len(boxes) == len(target["labels"]) <= 1
        if len(boxes):
            assert (boxes[:, 2:] > boxes[:, :2]).all()
            assert boxes.min() >= 0
            assert boxes.max() <= 64
            seen.add(tuple(round(v) for v in boxes[0].tolist()))
    assert len(seen) > 5  # flips, jitter and placement move the box
    batch, targets = collate([images[0], images[0]])
    assert batch.shape == (2, 3, 64, 64)
    assert len(targets) == 2


def test_the_generated_files_hold_their_boxes(tmp_path):
    path = write_digits(tmp_path, "train", 6, seed=3)
    document = json.loads(Path(path).read_text())
    assert any(
        not [a for a in document["annotations"] if a["image_id"] == i["id"]]
        for i in document["images"]
    )  # a negative
    for annotation in document["annotations"]:
        x, y, w, h = annotation["bbox"]
        assert w > 0
        assert h > 0
        assert x + w <= 96
        assert y + h <= 80


@pytest.mark.parametrize(("hflip", "left"), [(0.0, True), (1.0, False)])
def test_hflip_decides_whether_training_mirrors_the_image_and_its_boxes(hflip, left):
    """`hflip` 0 (the search's choice where mirroring changes the class) never mirrors,
    whatever the augmentation's strength; 1 always does."""
    entry = ImageEntry(1, "x", (0,), 200, 100, (Box(5, 0, 20, 10, 50, 40),))
    reader = cast(CachedReader, _Reader(200, 100))
    images = DetectionImages((entry,), reader, CONFIG, True, 0.05, hflip)
    torch.manual_seed(0)
    for _ in range(10):
        _, target = images[0]
        (box,) = target["boxes"].tolist()
        assert ((box[0] + box[2]) / 2 < 32) is left  # the box is on the left at 14 px
