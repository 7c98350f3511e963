"""The pixel reference: logistic regression on 16 x 16 thumbnails of the images, fitted on
the training split and scored (top-1) on the evaluation split the trials select by.

The cheapest learner that sees the pixels. Pretrained features that do not beat it do
not suit the images (ImageNet features on 8 px scans scored 0.73 where it scored 0.91),
and a search that has not beaten it has not found what learning adds. Validation
reports it; the operator's search holds its results against it (never done below it)
and trains from scratch when the catalogued backbones trail it.

The same fit also scores the evaluation images mirrored left to right. Where that score
falls far below the first, mirroring changes what an image shows (digits, letters,
arrows), and training should not flip the images (`hflip` 0, which the search then sets on
every trial: docs/automl.md, Mirroring).
"""

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

SIDE = 16  # 768 features in RGB: as good as the raw pixels on 8 and 28 px digits
# Enough to estimate a linear model of 768 features; bounds memory and the fit's time.
MAX_TRAIN_IMAGES = 20_000
MAX_EVAL_IMAGES = 5_000


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """(SIDE, SIDE, 3) uint8 from an (h, w, 3) uint8 image, its aspect not kept."""
    image = Image.fromarray(rgb).resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def sample_ids(ids: Sequence[int], limit: int, seed: int = 0) -> list[int]:
    """At most `limit` of `ids`, the same ones for the same input."""
    ordered = sorted(ids)
    if len(ordered) <= limit:
        return ordered
    return sorted(random.Random(seed).sample(ordered, limit))


@dataclass(frozen=True)
class PixelScores:
    accuracy: float  # top-1 on the evaluation images
    mirrored: float  # the same fit, on those images mirrored left to right


def pixel_reference(
    train: Sequence[tuple[str, int]],
    evaluation: Sequence[tuple[str, int]],
    thumbnails: Mapping[str, np.ndarray],
    classes: int,
) -> PixelScores | None:
    """Top-1 accuracy on `evaluation` (as given and mirrored) of a multinomial logistic
    regression fitted on `train`: (image key, class index) pairs whose thumbnails are in
    `thumbnails` (pairs without one, an image that failed to decode, are left out). None
    when either side is empty. An L2 penalty of 1/n on features scaled to unit variance
    (within a point or two of scikit-learn's default on the benchmark's digits)."""
    fitted = [(thumbnails[key], label) for key, label in train if key in thumbnails]
    scored = [(thumbnails[key], label) for key, label in evaluation if key in thumbnails]
    if not fitted or not scored:
        return None
    # torch only now: a dataset check without a pixel reference (detection) stays light.
    import torch

    from tailor_trainer.probe import fit_linear_probe, probe_logits

    def arrays(pairs: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = np.stack([p.reshape(-1) for p, _ in pairs]).astype(np.float64) / 255.0
        return torch.from_numpy(pixels), torch.tensor([label for _, label in pairs])

    x, y = arrays(fitted)
    fit = fit_linear_probe(x, y, classes, multilabel=False, weight_decay=1.0 / len(fitted))

    def top1(pairs: list[tuple[np.ndarray, int]]) -> float:
        test_x, test_y = arrays(pairs)
        guesses = probe_logits(test_x, fit).argmax(dim=1)
        return round(float((guesses == test_y).double().mean()), 6)

    # Thumbnails are (height, width, RGB): axis 1 runs left to right.
    mirrored = [(np.ascontiguousarray(p[:, ::-1]), label) for p, label in scored]
    return PixelScores(top1(scored), top1(mirrored))
