"""A real dataset for the demo: scikit-learn's bundled handwritten digits as COCO.

1,797 scans of handwritten digits (8 x 8 pixels, 17 grey levels) from the UCI
"Optical Recognition of Handwritten Digits" set, shipped inside scikit-learn, so
nothing is downloaded. Each becomes a PNG upscaled to `side` pixels; a stratified,
seeded split gives the training and evaluation annotation files.
"""

import io
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CLASS_NAMES = tuple(str(digit) for digit in range(10))
DEFAULT_SIDE = 32


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


def render(pixels: np.ndarray, side: int) -> bytes:
    """One 8 x 8 scan (values 0..16) as a greyscale PNG of side x side pixels."""
    grey = np.clip(np.asarray(pixels, dtype=np.float64) * (255 / 16), 0, 255).astype(np.uint8)
    image = Image.fromarray(grey, mode="L").resize((side, side), Image.Resampling.BILINEAR)
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
) -> CocoDataset:
    """train_per_class: keep only that many training images of each digit (a few-shot
    dataset, as a user who labelled a handful per class has); the evaluation split is
    the same stratified share either way."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    targets = np.asarray(digits.target)
    train, evaluation = train_test_split(
        np.arange(len(targets)), test_size=eval_fraction, stratify=targets, random_state=seed
    )
    if train_per_class is not None:
        rng = np.random.default_rng(seed)
        train = np.concatenate(
            [
                rng.choice(train[targets[train] == digit], train_per_class, replace=False)
                for digit in range(len(CLASS_NAMES))
            ]
        )
    images = {f"images/{i:04d}.png": render(digits.images[i], side) for i in range(len(targets))}
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
