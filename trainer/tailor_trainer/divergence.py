"""Divergence: a loss that is NaN or infinite, or one that never gets below chance level."""

import math
from typing import Any

import numpy as np

# A fresh model starts near chance level; many times above it, it will not come back.
EXPLODED = 20


def chance_loss(task: str, class_frequencies: np.ndarray, label_smoothing: float) -> float | None:
    """The loss of a model that learned nothing but the label frequencies; None: trivial."""
    classes = len(class_frequencies)
    if task == "detection":
        # FCOS's three losses have no chance level; NaN/inf still ends the run.
        return None
    if task == "classification":
        return math.log(classes) if classes > 1 else None
    # Multilabel: binary cross-entropy of the smoothed class frequencies, averaged.
    p = np.clip(class_frequencies * (1 - label_smoothing) + label_smoothing / 2, 1e-7, 1 - 1e-7)
    entropy = float(np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p))))
    return entropy if entropy > 1e-3 else None


class DivergenceMonitor:
    """Feed it every step's loss; it answers with a reason once training has diverged."""

    def __init__(self, chance: float | None, patience: int, margin: float = 0.02) -> None:
        self.chance = chance
        self.patience = patience
        self.margin = margin
        self.steps = 0
        self.smoothed: float | None = None
        self.best = math.inf

    def update(self, loss: float, step: int) -> str | None:
        if not math.isfinite(loss):
            return f"the training loss became {loss} at step {step}"
        self.steps += 1
        self.smoothed = loss if self.smoothed is None else 0.9 * self.smoothed + 0.1 * loss
        self.best = min(self.best, self.smoothed)
        if self.chance is None:
            return None
        # ln 2: where any fresh binary classifier starts, however rare its labels.
        if self.smoothed > EXPLODED * max(self.chance, math.log(2)):
            return (
                f"the training loss exploded: smoothed {self.smoothed:.4g} at step {step}, "
                f"over {EXPLODED}x chance level ({self.chance:.4f})"
            )
        if self.steps < self.patience:
            return None
        if self.best > self.chance * (1 - self.margin):
            return (
                f"no learning: after {self.steps} steps the smoothed training loss never got "
                f"below chance level ({self.chance:.4f}); best {self.best:.4f}, "
                f"last {self.smoothed:.4f}"
            )
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "smoothed": self.smoothed, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.smoothed = state["smoothed"]
        self.best = float(state["best"])
