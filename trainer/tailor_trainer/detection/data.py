"""Detection images into batches: EXIF orientation applied, letterboxed to a square side,
boxes carried through every transform (torchvision transforms v2), targets as a list of
dicts.

Letterbox: the longer side is scaled to S and the rest padded (right and bottom at
evaluation, so a box maps back to the original by one division by `scale`). Training
adds flips, a scale jitter (the image scaled by up to +-40% x strength, then cropped or
padded back to S at a random place) and drops the boxes that left the picture
(SanitizeBoundingBoxes). Crowd boxes are not trained on.
"""

import random
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from tailor_trainer.cache import CachedReader
from tailor_trainer.coco import ImageEntry
from tailor_trainer.data import DataConfig, open_upright
from tailor_trainer.errors import DatasetCorrupt
from tailor_trainer.storage import ObjectNotFound

Target = dict[str, Tensor]


def letterbox_scale(width: int, height: int, side: int) -> float:
    return side / max(width, height)


class Letterbox:
    """Scale the longer side to `side` (times a random jitter when training) and pad or
    crop to side x side; boxes follow."""

    def __init__(self, side: int, jitter: float = 0.0, training: bool = False) -> None:
        self.side, self.jitter, self.training = side, jitter, training

    def __call__(self, image: tv_tensors.Image, boxes: tv_tensors.BoundingBoxes) -> Any:
        height, width = image.shape[-2:]
        scale = letterbox_scale(width, height, self.side)
        if self.training and self.jitter:
            scale *= random.uniform(1 - self.jitter, 1 + self.jitter)
        size = [max(1, round(height * scale)), max(1, round(width * scale))]
        image, boxes = F.resize(image, size, antialias=True), F.resize(boxes, size)
        pad_w, pad_h = max(0, self.side - size[1]), max(0, self.side - size[0])
        left = random.randint(0, pad_w) if self.training else 0
        top = random.randint(0, pad_h) if self.training else 0
        padding = [left, top, pad_w - left, pad_h - top]
        image, boxes = F.pad(image, padding), F.pad(boxes, padding)
        height, width = image.shape[-2:]
        if height > self.side or width > self.side:  # jittered past the side: crop
            y = random.randint(0, height - self.side)
            x = random.randint(0, width - self.side)
            image = F.crop(image, y, x, self.side, self.side)
            boxes = F.crop(boxes, y, x, self.side, self.side)
        return image, boxes


def prepare(picture: Image.Image, config: DataConfig) -> tuple[Tensor, float]:
    """The evaluation input of an upright RGB picture: letterboxed, normalised; with the
    scale that maps the detector's boxes back to the picture's pixels (divide by it)."""
    image = tv_tensors.Image(F.pil_to_tensor(picture))
    empty = tv_tensors.BoundingBoxes(
        torch.zeros(0, 4), format="XYXY", canvas_size=(picture.height, picture.width)
    )
    image, _ = Letterbox(config.size)(image, empty)
    pixels = F.normalize(F.to_dtype(image, torch.float32, scale=True), config.mean, config.std)
    return pixels.as_subclass(Tensor), letterbox_scale(picture.width, picture.height, config.size)


class DetectionImages(Dataset[tuple[Tensor, Target]]):
    def __init__(
        self,
        entries: tuple[ImageEntry, ...],
        reader: CachedReader,
        config: DataConfig,
        training: bool,
        strength: float,
        hflip: float = 0.5,
    ) -> None:
        self.entries = entries
        self.reader = reader
        self.config = config
        self.training = training and strength > 0
        self.letterbox = Letterbox(config.size, 0.4 * strength, self.training)
        self.flip = v2.RandomHorizontalFlip(hflip)
        self.colour = v2.ColorJitter(0.4 * strength, 0.4 * strength, 0.4 * strength)
        self.sanitize = v2.SanitizeBoundingBoxes(min_size=1.0)

    def __len__(self) -> int:
        return len(self.entries)

    def read(self, index: int) -> Image.Image:
        entry = self.entries[index]
        try:
            data = self.reader.read(entry.uri)
        except ObjectNotFound as error:
            raise DatasetCorrupt(f"image {entry.id} is missing: {error}") from error
        try:
            return open_upright(data)
        except Exception as error:  # any PIL failure means the same thing: a bad image
            raise DatasetCorrupt(
                f"image {entry.id} ({entry.uri}) fails to decode: {error}"
            ) from error

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        entry = self.entries[index]
        picture = self.read(index)
        kept = [box for box in entry.boxes if not box.crowd or not self.training]
        xyxy = torch.tensor(
            [[b.x, b.y, b.x + b.w, b.y + b.h] for b in kept], dtype=torch.float32
        ).reshape(-1, 4)
        # Declared sizes were checked against the image by validation; scale to what was
        # decoded, in case a run meets an image validation did not.
        sx, sy = picture.width / entry.width, picture.height / entry.height
        xyxy = xyxy * torch.tensor([sx, sy, sx, sy])
        image = tv_tensors.Image(F.pil_to_tensor(picture))
        boxes = tv_tensors.BoundingBoxes(
            xyxy, format="XYXY", canvas_size=(picture.height, picture.width)
        )
        labels = torch.tensor([b.label for b in kept], dtype=torch.int64)
        crowd = torch.tensor([b.crowd for b in kept], dtype=torch.bool)
        if self.training:
            image, boxes = self.flip(image, boxes)
            image = self.colour(image)
        image, boxes = self.letterbox(image, boxes)
        target: dict[str, Any] = {"boxes": boxes, "labels": labels, "crowd": crowd}
        if self.training:
            target = self.sanitize(target)
            target["crowd"] = torch.zeros(len(target["labels"]), dtype=torch.bool)
        pixels = F.normalize(
            F.to_dtype(image, torch.float32, scale=True), self.config.mean, self.config.std
        )
        return pixels.as_subclass(Tensor), {
            "boxes": target["boxes"].as_subclass(Tensor).float(),
            "labels": target["labels"],
            "crowd": target["crowd"],
            "index": torch.tensor(index),
            "scale": torch.tensor(letterbox_scale(picture.width, picture.height, self.config.size)),
        }


def collate(batch: list[tuple[Tensor, Target]]) -> tuple[Tensor, list[Target]]:
    return torch.stack([image for image, _ in batch]), [target for _, target in batch]
