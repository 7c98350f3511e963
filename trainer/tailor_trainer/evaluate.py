"""Runs a model over the evaluation split and scores its predictions."""

from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import torch
from torch.utils.data import DataLoader

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
