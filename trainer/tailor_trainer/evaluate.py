"""Runs a model over the evaluation split and scores its predictions."""

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from tailor_trainer.coco import ImageEntry
from tailor_trainer.detection.metrics import ImageBoxes
from tailor_trainer.detection.model import postprocess
from tailor_trainer.metrics import Evaluation, classification_metrics, multilabel_metrics


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    loader: DataLoader[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[object]],
    multilabel: bool,
    channels_last: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[np.ndarray | None, np.ndarray]:
    """(probabilities or scores (N, C) float64, targets); (None, ...) when stopped."""
    was_training = model.training
    model.eval()
    outputs: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    try:
        for images, target in loader:
            if should_stop():
                return None, np.zeros(0)
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = model(images)
            # Metrics in float64: bf16 probabilities would tie and shift AP.
            logits = logits.double()
            scores = torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)
            outputs.append(scores.cpu().numpy())
            targets.append(target.numpy())
    finally:
        model.train(was_training)
    return np.concatenate(outputs), np.concatenate(targets)


def score(
    probabilities: np.ndarray, targets: np.ndarray, multilabel: bool, threshold: float
) -> Evaluation:
    if multilabel:
        return multilabel_metrics(probabilities, targets, threshold)
    return classification_metrics(probabilities, targets.astype(np.int64))


def true_boxes(entry: ImageEntry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes x1y1x2y2, labels, crowd) of an image, in its own (upright) pixels."""
    boxes = np.array([[b.x, b.y, b.x + b.w, b.y + b.h] for b in entry.boxes], dtype=np.float64)
    labels = np.array([b.label for b in entry.boxes], dtype=np.int64)
    crowd = np.array([b.crowd for b in entry.boxes], dtype=bool)
    return boxes.reshape(-1, 4), labels, crowd


@torch.no_grad()
def detect(
    model: torch.nn.Module,
    loader: DataLoader[Any],
    entries: tuple[ImageEntry, ...],
    device: torch.device,
    channels_last: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[ImageBoxes] | None:
    """Each evaluation image's detections (the shared post-processing, boxes mapped back
    to the image's pixels) beside its ground truth; None when stopped. The detector
    autocasts its own convolutions."""
    was_training = model.training
    model.eval()
    found: list[ImageBoxes] = []
    try:
        for images, targets in loader:
            if should_stop():
                return None
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            boxes, scores = model(images)
            for detections, target in zip(postprocess(boxes, scores), targets, strict=True):
                entry = entries[int(target["index"])]
                truth, labels, crowd = true_boxes(entry)
                scale = float(target["scale"])
                found.append(
                    ImageBoxes(
                        true_boxes=truth,
                        true_labels=labels,
                        boxes=detections["boxes"].double().cpu().numpy() / scale,
                        scores=detections["scores"].double().cpu().numpy(),
                        labels=detections["labels"].cpu().numpy(),
                        true_crowd=crowd,
                    )
                )
    finally:
        model.train(was_training)
    return found
