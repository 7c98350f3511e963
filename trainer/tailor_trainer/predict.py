"""`tailor-train predict`: classify images with an exported bundle, local or in S3.

The bundle is what `export` writes: config.json (timm's format: architecture, class
names, input size, normalisation), model.onnx and model.safetensors. Images are
prepared with the evaluation transform the trainer scored the model with; the
ONNX model runs on onnxruntime (the default), the safetensors weights on PyTorch.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from tailor_trainer.data import DataConfig, Transform, create_transform, open_upright
from tailor_trainer.errors import ConfigError
from tailor_trainer.model import create_model
from tailor_trainer.storage import ObjectNotFound, Storage, join

Backend = Literal["onnx", "torch"]
BACKENDS: tuple[Backend, ...] = ("onnx", "torch")


@dataclass(frozen=True)
class Prediction:
    image: str
    label: str
    probability: float
    top: list[tuple[str, float]]  # best first

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "label": self.label,
            "probability": self.probability,
            "top": [{"label": label, "probability": p} for label, p in self.top],
        }


@dataclass(frozen=True)
class BundleConfig:
    architecture: str
    classes: list[str]
    data: DataConfig


def read_bundle_config(text: str, uri: str) -> BundleConfig:
    """The parts of timm's config.json a prediction needs; names what is missing."""
    try:
        config = json.loads(text)
        pretrained = config["pretrained_cfg"]
        side = int(pretrained["input_size"][-1])
        mean, std = (tuple(float(v) for v in pretrained[key]) for key in ("mean", "std"))
        return BundleConfig(
            architecture=str(config["architecture"]),
            classes=[str(name) for name in config["label_names"]],
            data=DataConfig(
                size=side,
                mean=(mean[0], mean[1], mean[2]),
                std=(std[0], std[1], std[2]),
                interpolation=str(pretrained.get("interpolation", "bicubic")),
                crop_pct=float(pretrained.get("crop_pct", 0.875)),
            ),
        )
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise ConfigError(f"{uri} is not an exported model's config.json: {error!r}") from error


class Classifier:
    """An exported model with its preprocessing, on one of two runtimes."""

    def __init__(self, config: BundleConfig, run: Any, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self._run = run
        self.transform: Transform = create_transform(config.data, False, 0.0)

    @property
    def classes(self) -> list[str]:
        return self.config.classes

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(image.convert("RGB")) for image in images])

    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        """Softmax over the classes, (N, C) float64."""
        logits = np.asarray(self._run(batch), dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        probabilities: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
        return probabilities


def _read(storage: Storage, uri: str) -> bytes:
    try:
        return storage.read(uri)
    except ObjectNotFound as error:
        raise ConfigError(f"no exported model at {uri}: {error}") from error


def load_classifier(storage: Storage, bundle: str, backend: Backend = "onnx") -> Classifier:
    config = read_bundle_config(
        _read(storage, join(bundle, "config.json")).decode(), join(bundle, "config.json")
    )
    if backend == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(
            _read(storage, join(bundle, "model.onnx")), providers=["CPUExecutionProvider"]
        )

        def run_onnx(batch: torch.Tensor) -> Any:
            return session.run(["logits"], {"input": batch.numpy()})[0]

        return Classifier(config, run_onnx, backend)
    from safetensors.torch import load as load_safetensors

    model = create_model(config.architecture, len(config.classes), input_size=config.data.size)
    model.load_state_dict(load_safetensors(_read(storage, join(bundle, "model.safetensors"))))
    model.eval()

    @torch.no_grad()
    def run_torch(batch: torch.Tensor) -> Any:
        return model(batch).numpy()

    return Classifier(config, run_torch, backend)


def open_image(storage: Storage, uri: str) -> Image.Image:
    try:
        data = storage.read(uri)
    except ObjectNotFound as error:
        raise ConfigError(f"no image at {uri}: {error}") from error
    try:
        return open_upright(data)
    except Exception as error:  # any PIL failure means the same: not an image
        raise ConfigError(f"{uri} is not a readable image: {error}") from error


def predict(
    classifier: Classifier, storage: Storage, images: Sequence[str], top: int = 3
) -> list[Prediction]:
    pictures = [open_image(storage, uri) for uri in images]
    probabilities = classifier.probabilities(classifier.prepare(pictures))
    predictions = []
    for uri, row in zip(images, probabilities, strict=True):
        order = np.argsort(-row)[: max(1, top)]
        ranked = [(classifier.classes[i], float(row[i])) for i in order]
        predictions.append(Prediction(uri, ranked[0][0], ranked[0][1], ranked))
    return predictions


def download_bundle(storage: Storage, bundle: str, folder: Path) -> Path:
    """Copies a bundle (e.g. from S3) into a local folder, for use without the store."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.onnx", "model.safetensors", "model_card.json"):
        (folder / name).write_bytes(_read(storage, join(bundle, name)))
    return folder


def describe(predictions: Sequence[Prediction]) -> str:
    lines = []
    for item in predictions:
        others = ", ".join(f"{label} {p:.3f}" for label, p in item.top[1:])
        lines.append(
            f"{item.image}: {item.label} ({item.probability:.3f})"
            + (f"   next: {others}" if others else "")
        )
    return "\n".join(lines)


__all__ = [
    "BACKENDS",
    "Classifier",
    "Prediction",
    "describe",
    "download_bundle",
    "load_classifier",
    "predict",
]
