"""Generated detection datasets: scikit-learn's handwritten digits (real 8x8 scans)
pasted on canvases, as COCO files with pixel boxes. Some canvases stay empty."""

import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

_DIGITS = load_digits()


def _tight(patch: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(patch)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def digits_document(
    folder: Path,
    name: str,
    images: int,
    classes: int = 3,
    seed: int = 0,
    side: tuple[int, int] = (96, 80),
    digit_px: int = 24,
    empty_every: int = 6,
) -> dict[str, Any]:
    """Writes `images` PNG canvases of width x height `side` under folder/name/ and
    returns their COCO document (digits 0..classes-1, 1 to 3 per canvas, every
    `empty_every`-th canvas empty)."""
    rng = random.Random(seed)
    pool = [i for i, target in enumerate(_DIGITS.target) if target < classes]
    width, height = side
    document: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": c + 1, "name": f"digit-{c}"} for c in range(classes)],
    }
    (folder / name).mkdir(parents=True, exist_ok=True)
    for number in range(images):
        canvas = np.full((height, width), 235.0) + np.array(
            [[rng.uniform(-10, 10) for _ in range(width)] for _ in range(height)]
        )
        count = 0 if empty_every and number % empty_every == empty_every - 1 else rng.randint(1, 3)
        placed: list[tuple[int, int, int, int]] = []
        for _ in range(count):
            index = rng.choice(pool)
            patch = _DIGITS.images[index]
            size = digit_px + rng.randint(-4, 4)
            scaled = np.asarray(
                Image.fromarray((patch * 255 / 16).astype(np.uint8)).resize(
                    (size, size), Image.Resampling.BILINEAR
                ),
                dtype=np.float64,
            )
            for _attempt in range(20):
                x, y = rng.randint(0, width - size), rng.randint(0, height - size)
                if all(
                    x + size <= a or a + 24 <= x or y + size <= b or b + 24 <= y
                    for a, b, _, _ in placed
                ):
                    break
            else:
                continue
            canvas[y : y + size, x : x + size] -= scaled * 0.85
            left, top, right, bottom = _tight(scaled > 40)
            placed.append((x, y, size, size))
            document["annotations"].append(
                {
                    "id": len(document["annotations"]) + 1,
                    "image_id": number + 1,
                    "category_id": int(_DIGITS.target[index]) + 1,
                    "bbox": [x + left, y + top, right - left, bottom - top],
                    "iscrowd": 0,
                }
            )
        buffer = io.BytesIO()
        Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).convert("RGB").save(buffer, "PNG")
        file_name = f"{name}/{number:04d}.png"
        (folder / file_name).write_bytes(buffer.getvalue())
        document["images"].append(
            {"id": number + 1, "file_name": file_name, "width": width, "height": height}
        )
    return document


def write_digits(folder: Path, name: str, images: int, **options: Any) -> str:
    """The annotation file's path of a generated split (see digits_document)."""
    document = digits_document(folder, name, images, **options)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(document))
    return str(path)
