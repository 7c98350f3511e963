"""Generated COCO datasets of coloured shapes, separable by colour: for tests, benchmarks
and demos on machines with no dataset and no network."""

import io
import json
import random
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from tailor_trainer.coco import ClassTask
from tailor_trainer.storage import Storage, join

PALETTE: tuple[tuple[int, int, int], ...] = (
    (220, 30, 30),
    (30, 200, 40),
    (40, 60, 230),
    (235, 210, 20),
    (200, 40, 210),
    (20, 210, 210),
    (250, 140, 20),
    (120, 120, 120),
)


@dataclass(frozen=True)
class SyntheticSpec:
    classes: int = 4
    images_per_class: int = 8
    side: int = 32
    task: ClassTask = "classification"
    seed: int = 0
    image_format: str = "PNG"

    def __post_init__(self) -> None:
        if not 1 <= self.classes <= len(PALETTE):
            raise ValueError(f"classes must be between 1 and {len(PALETTE)}, not {self.classes}")


def render(labels: tuple[int, ...], side: int, generator: random.Random, fmt: str = "PNG") -> bytes:
    """A noisy grey background with one filled shape per label, in the label's colour."""
    shade = generator.randint(60, 190)
    image = Image.new("RGB", (side, side), (shade, shade, shade))
    draw = ImageDraw.Draw(image)
    for label in labels:
        size = generator.randint(side // 3, side // 2)
        x, y = generator.randint(0, side - size), generator.randint(0, side - size)
        colour = tuple(min(255, max(0, c + generator.randint(-20, 20))) for c in PALETTE[label])
        box = (x, y, x + size, y + size)
        if generator.random() < 0.5:
            draw.rectangle(box, fill=colour)
        else:
            draw.ellipse(box, fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _labels_for(index: int, spec: SyntheticSpec, generator: random.Random) -> tuple[int, ...]:
    if spec.task == "classification":
        return (index % spec.classes,)
    # Multilabel: each class present with even odds, so every class has positives.
    chosen = tuple(c for c in range(spec.classes) if generator.random() < 0.5)
    return chosen or (index % spec.classes,)


def build(
    spec: SyntheticSpec, image_prefix: str = "images"
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(COCO document, {relative image path: bytes})."""
    generator = random.Random(spec.seed)
    extension = "png" if spec.image_format == "PNG" else "jpg"
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    for index in range(spec.classes * spec.images_per_class):
        labels = _labels_for(index, spec, generator)
        name = f"{image_prefix}/{spec.seed}-{index:05d}.{extension}"
        files[name] = render(labels, spec.side, generator, spec.image_format)
        image_id = index + 1
        images.append({"id": image_id, "file_name": name, "width": spec.side, "height": spec.side})
        for label in labels:
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": label + 1}
            )
    categories = [{"id": c + 1, "name": f"class-{c}"} for c in range(spec.classes)]
    document = {"images": images, "annotations": annotations, "categories": categories}
    return document, files


def write(storage: Storage, prefix: str, spec: SyntheticSpec, name: str = "train.json") -> str:
    """Writes the images and the annotation file under prefix; returns the annotation URI."""
    document, files = build(spec)
    for relative, data in files.items():
        storage.write(join(prefix, relative), data)
    uri = join(prefix, name)
    storage.write(uri, json.dumps(document).encode())
    return uri
