"""The pixel reference validation reports: a logistic regression on 16 x 16 thumbnails,
fitted on the training split and scored on the split the trials select by."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tailor_trainer.pixels import SIDE, pixel_reference, sample_ids, thumbnail
from tailor_trainer.storage import Storage
from tailor_trainer.validate import ValidateOptions, validate


def _halves(
    count: int, seed: int, axis: int = 1
) -> tuple[list[tuple[str, int]], dict[str, np.ndarray]]:
    """Class 0 bright in the first half along `axis`, class 1 in the second, noise
    elsewhere. axis 1: left and right (each mirror image is of the other class); axis 0:
    top and bottom (each mirror image is of the same class)."""
    rng = np.random.default_rng(seed)
    pairs, thumbs = [], {}
    for i in range(count):
        label = i % 2
        image = rng.integers(0, 60, size=(SIDE, SIDE, 3), dtype=np.uint8)
        half = slice(0, SIDE // 2) if label == 0 else slice(SIDE // 2, SIDE)
        image[(slice(None), half) if axis == 1 else (half,)] += 150
        key = f"{seed}-{i}"
        pairs.append((key, label))
        thumbs[key] = image
    return pairs, thumbs


def test_a_linear_pattern_in_the_pixels_is_learned_and_labels_without_one_are_not():
    train, thumbs = _halves(40, seed=0)
    evaluation, more = _halves(40, seed=1)
    thumbs |= more
    scores = pixel_reference(train, evaluation, thumbs, classes=2)
    assert scores is not None
    assert scores.accuracy == 1.0
    # Bright on the left mirrored is bright on the right: every mirror image is the
    # other class, and the mirrored score says so.
    assert scores.mirrored == 0.0
    shuffled = [
        (key, int(label))
        for (key, _), label in zip(
            train, np.random.default_rng(2).permutation([p[1] for p in train]), strict=True
        )
    ]
    chance = pixel_reference(shuffled, evaluation, thumbs, classes=2)
    assert chance is not None
    assert chance.accuracy < 0.8
    # Images without a thumbnail (failed to decode) are left out; nothing left: None.
    assert pixel_reference(train, [("gone", 0)], thumbs, classes=2) is None
    assert pixel_reference([], evaluation, thumbs, classes=2) is None


def test_a_class_that_survives_mirroring_scores_its_mirror_images_as_well():
    train, thumbs = _halves(40, seed=0, axis=0)
    evaluation, more = _halves(40, seed=1, axis=0)
    thumbs |= more
    scores = pixel_reference(train, evaluation, thumbs, classes=2)
    assert scores is not None
    assert scores.accuracy == 1.0
    assert scores.mirrored >= 0.9


def test_thumbnails_are_square_whatever_the_image_and_samples_are_stable():
    assert thumbnail(np.zeros((7, 30, 3), dtype=np.uint8)).shape == (SIDE, SIDE, 3)
    ids = list(range(100, 0, -1))
    assert sample_ids(ids, 500) == sorted(ids)
    chosen = sample_ids(ids, 10)
    assert len(chosen) == 10
    assert chosen == sample_ids(list(reversed(ids)), 10)


def _digits_dataset(folder: Path) -> tuple[str, str, np.ndarray, np.ndarray]:
    """scikit-learn's real 8 x 8 scans: 20 per class to train on, 30 per class held out,
    as COCO files; also the pixels and labels of each split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    (folder / "img").mkdir(parents=True)
    categories = [{"id": c + 1, "name": str(c)} for c in range(10)]
    splits: dict[str, list[int]] = {"train": [], "eval": []}
    for label in range(10):
        ids = [i for i, t in enumerate(digits.target) if t == label]
        splits["train"] += ids[:20]
        splits["eval"] += ids[20:50]
    paths = []
    for split, ids in splits.items():
        images, annotations = [], []
        for i in ids:
            pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels, "L").save(folder / "img" / f"{i}.png")
            images.append({"id": i, "file_name": f"img/{i}.png", "width": 8, "height": 8})
            annotations.append({"id": i, "image_id": i, "category_id": int(digits.target[i]) + 1})
        path = folder / f"{split}.json"
        path.write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories})
        )
        paths.append(str(path))
    train, held = splits["train"], splits["eval"]
    return paths[0], paths[1], digits.data[train], digits.data[held]


def test_validation_reports_what_a_logistic_regression_on_the_pixels_scores(tmp_path):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    train, evaluation, train_pixels, eval_pixels = _digits_dataset(tmp_path)
    report = validate(Storage(), ValidateOptions(annotations=train, evaluation=evaluation))
    facts = report.result.dataset
    assert facts is not None
    assert facts.pixel_reference is not None
    # scikit-learn's logistic regression on the raw 8 x 8 pixels, the same splits.
    target = load_digits().target
    train_labels, eval_labels = target[_ids(train)], target[_ids(evaluation)]
    model = LogisticRegression(max_iter=5000).fit(train_pixels / 16, train_labels)
    expected = float(np.mean(model.predict(eval_pixels / 16) == eval_labels))
    assert expected > 0.8
    assert facts.pixel_reference == pytest.approx(expected, abs=0.04)
    # Mirrored, most digits are other shapes: the same fit scores far lower on them.
    assert facts.mirrored_pixel_reference is not None
    assert facts.mirrored_pixel_reference < facts.pixel_reference - 0.3
    # Without an evaluation file: the trainer's own split of train, scored on 20% of it.
    own = validate(Storage(), ValidateOptions(annotations=train)).result.dataset
    assert own is not None
    assert own.pixel_reference is not None
    assert own.pixel_reference * 40 == pytest.approx(round(own.pixel_reference * 40))
    # No pixel reference where top-1 on a single label is not what the trials score.
    multilabel = validate(Storage(), ValidateOptions(annotations=train, task="multilabel"))
    assert multilabel.result.dataset is not None
    assert multilabel.result.dataset.pixel_reference is None
    assert multilabel.result.dataset.mirrored_pixel_reference is None


def _ids(path: str) -> list[int]:
    return [image["id"] for image in json.loads(Path(path).read_text())["images"]]
