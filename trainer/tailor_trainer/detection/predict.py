"""`tailor-train predict` on a detection bundle: objects as Azure's image analysis gives
them (`boundingBox` x, y, w, h in the image's own pixels, EXIF orientation applied, and
`tags` with name and confidence), from the ONNX model or the safetensors weights, both
through the one shared post-processing (`model.postprocess`)."""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load as load_safetensors

from tailor_trainer.data import DataConfig
from tailor_trainer.detection.data import prepare
from tailor_trainer.detection.export import OUTPUTS, detector_of, load_detector
from tailor_trainer.detection.model import postprocess
from tailor_trainer.errors import ConfigError

Run = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class DetectedObject:
    name: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the image's pixels

    def to_json(self) -> dict[str, Any]:
        x1, y1, x2, y2 = self.box
        return {
            "boundingBox": {
                "x": round(x1),
                "y": round(y1),
                "w": round(x2) - round(x1),
                "h": round(y2) - round(y1),
            },
            "tags": [{"name": self.name, "confidence": round(self.confidence, 6)}],
        }


@dataclass(frozen=True)
class Detections:
    image: str
    width: int
    height: int
    objects: list[DetectedObject]

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "metadata": {"width": self.width, "height": self.height},
            "objects": [item.to_json() for item in self.objects],
        }


@dataclass(frozen=True)
class DetectionModel:
    classes: list[str]
    data: DataConfig
    run: Run
    backend: str


def is_detection_bundle(config_text: str) -> bool:
    try:
        return bool(json.loads(config_text).get("task") == "detection")
    except (ValueError, AttributeError):
        return False


def load_detection_model(
    config_text: str, read: Callable[[str], bytes], uri: str, backend: str
) -> DetectionModel:
    """`read(name)`: a file of the bundle."""
    try:
        config = json.loads(config_text)
        size = int(config["input"]["size"])
        mean, std = (tuple(float(v) for v in config["input"][key]) for key in ("mean", "std"))
        classes = [str(name) for name in config["label_names"]]
        architecture = str(config["architecture"])
        kind = detector_of(config)
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{uri} is not a detection bundle's config.json: {error!r}") from error
    data = DataConfig(size, (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]), "bilinear", 1.0)
    if backend == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(
            read("model.onnx"), providers=["CPUExecutionProvider"]
        )

        def run_onnx(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            boxes, scores = session.run(OUTPUTS, {"input": batch.numpy()})
            return torch.from_numpy(np.asarray(boxes)), torch.from_numpy(np.asarray(scores))

        return DetectionModel(classes, data, run_onnx, backend)
    detector = load_detector(
        architecture, len(classes), load_safetensors(read("model.safetensors")), kind
    )

    @torch.no_grad()
    def run_torch(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, scores = detector(batch)
        return boxes, scores

    return DetectionModel(classes, data, run_torch, backend)


def detect_objects(
    model: DetectionModel,
    pictures: Sequence[tuple[str, Image.Image]],
    min_confidence: float,
    max_objects: int,
) -> list[Detections]:
    """Each (name, upright RGB picture)'s objects above `min_confidence`, at most
    `max_objects`, best first."""
    found = []
    for name, picture in pictures:
        pixels, scale = prepare(picture, model.data)
        boxes, scores = model.run(pixels.unsqueeze(0))
        kept = postprocess(boxes, scores, min_confidence, max_objects)[0]
        limit = torch.tensor([picture.width, picture.height] * 2, dtype=torch.float32)
        mapped = torch.minimum((kept["boxes"] / scale).clamp(min=0), limit)
        objects = [
            DetectedObject(
                model.classes[int(label)],
                float(score),
                (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            )
            for box, score, label in zip(mapped, kept["scores"], kept["labels"], strict=True)
        ]
        found.append(Detections(name, picture.width, picture.height, objects))
    return found


def draw(picture: Image.Image, detections: Detections, path: Path) -> None:
    """The picture with its boxes and tags (torchvision's draw_bounding_boxes)."""
    from torchvision.transforms.v2.functional import pil_to_tensor
    from torchvision.utils import draw_bounding_boxes

    image = pil_to_tensor(picture)
    if detections.objects:
        boxes = torch.tensor([item.box for item in detections.objects])
        labels = [f"{item.name} {item.confidence:.2f}" for item in detections.objects]
        image = draw_bounding_boxes(image, boxes, labels, colors="red", width=2)
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)


def describe(found: Sequence[Detections]) -> str:
    lines = []
    for item in found:
        lines.append(f"{item.image}: {len(item.objects)} object(s)")
        for obj in item.objects:
            box = obj.to_json()["boundingBox"]
            lines.append(
                f"  {obj.name} {obj.confidence:.3f} at x {box['x']} y {box['y']} "
                f"w {box['w']} h {box['h']}"
            )
    return "\n".join(lines)
