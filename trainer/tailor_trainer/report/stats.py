"""The numbers behind the report, from predictions alone (plain numpy, no model).

Every figure in the report is computed here the way tailor_trainer.metrics computes
the trial's metrics, so a number in the page and the same number in the result
document agree: the same top-1 / threshold decisions, the same AP, the same ECE bins.
"""

import itertools
from dataclasses import dataclass

import numpy as np

from tailor_trainer.metrics import (
    ECE_BINS,
    binary_average_precision,
    confusion_matrix,
    expected_calibration_error,
    one_hot,
)


@dataclass(frozen=True)
class PerClass:
    """One value per class; AP is NaN for a class with no positive in the evaluation."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    average_precision: np.ndarray
    support: np.ndarray  # evaluation images of the class
    predicted: np.ndarray  # images the model put in the class


@dataclass(frozen=True)
class Reliability:
    """Top-1 confidence in ECE_BINS equal-width bins, each (lower, upper]."""

    edges: np.ndarray  # ECE_BINS + 1
    counts: np.ndarray  # images per bin
    confidence: np.ndarray  # mean confidence per bin (NaN when empty)
    accuracy: np.ndarray  # share correct per bin (NaN when empty)
    ece: float


@dataclass(frozen=True)
class Mistake:
    """An evaluation image the model got wrong."""

    index: int  # position in the evaluation split
    predicted: tuple[tuple[int, float], ...]  # (class, score), most confident first
    truth: tuple[tuple[int, float], ...]  # (class, score the model gave it)
    confidence: float  # how sure the model was of its wrong decision


def truth_matrix(targets: np.ndarray, classes: int, multilabel: bool) -> np.ndarray:
    """(N, C) booleans from class indices (classification) or 0/1 rows (multilabel)."""
    if multilabel:
        return np.asarray(targets).astype(bool)
    return one_hot(np.asarray(targets).astype(np.int64), classes).astype(bool)


def decisions(scores: np.ndarray, multilabel: bool, threshold: float) -> np.ndarray:
    """What the model answers: the top-1 class, or every score at or above threshold."""
    if multilabel:
        decided: np.ndarray = scores >= threshold
        return decided
    return one_hot(np.argmax(scores, axis=1), scores.shape[1]).astype(bool)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.divide(
        numerator, denominator, out=np.zeros(numerator.shape), where=denominator > 0
    )
    return result


def per_class(
    scores: np.ndarray, targets: np.ndarray, multilabel: bool, threshold: float = 0.5
) -> PerClass:
    truth = truth_matrix(targets, scores.shape[1], multilabel)
    decided = decisions(scores, multilabel, threshold)
    true_positive = (truth & decided).sum(axis=0).astype(np.float64)
    predicted = decided.sum(axis=0)
    support = truth.sum(axis=0)
    precision = _ratio(true_positive, predicted.astype(np.float64))
    recall = _ratio(true_positive, support.astype(np.float64))
    f1 = _ratio(2 * precision * recall, precision + recall)
    ap = np.array(
        [
            binary_average_precision(truth[:, c], scores[:, c]) if support[c] else np.nan
            for c in range(scores.shape[1])
        ]
    )
    return PerClass(precision, recall, f1, ap, support, predicted)


def reliability(probabilities: np.ndarray, targets: np.ndarray) -> Reliability:
    """The bins of metrics.expected_calibration_error, and its value."""
    targets = np.asarray(targets).astype(np.int64)
    predicted = np.argmax(probabilities, axis=1)
    confidence = probabilities[np.arange(len(targets)), predicted]
    correct = (predicted == targets).astype(np.float64)
    edges = np.linspace(0, 1, ECE_BINS + 1)
    counts, mean_confidence, accuracy = [], [], []
    for lower, upper in itertools.pairwise(edges):
        inside = (confidence > lower) & (confidence <= upper)
        count = int(inside.sum())
        counts.append(count)
        mean_confidence.append(float(confidence[inside].mean()) if count else np.nan)
        accuracy.append(float(correct[inside].mean()) if count else np.nan)
    return Reliability(
        edges=edges,
        counts=np.array(counts),
        confidence=np.array(mean_confidence),
        accuracy=np.array(accuracy),
        ece=expected_calibration_error(probabilities, targets),
    )


def confusion(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rows are true classes, columns predicted ones (counts)."""
    predicted = np.argmax(probabilities, axis=1)
    return confusion_matrix(predicted, np.asarray(targets).astype(np.int64), probabilities.shape[1])


def top_confusions(matrix: np.ndarray, limit: int = 10) -> list[tuple[int, int, int]]:
    """The most frequent (true, predicted, count) mistakes, largest first."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:limit]
    pairs = [(int(i // off.shape[1]), int(i % off.shape[1])) for i in flat]
    return [(t, p, int(off[t, p])) for t, p in pairs if off[t, p] > 0]


def wrong(
    scores: np.ndarray, targets: np.ndarray, multilabel: bool, threshold: float
) -> np.ndarray:
    """(N,) booleans: the images whose decision differs from the truth."""
    truth = truth_matrix(targets, scores.shape[1], multilabel)
    different: np.ndarray = (truth != decisions(scores, multilabel, threshold)).any(axis=1)
    return different


def mistakes(
    scores: np.ndarray,
    targets: np.ndarray,
    multilabel: bool,
    threshold: float = 0.5,
    limit: int = 48,
) -> list[Mistake]:
    """The wrong images, the most confident mistakes first (ties: evaluation order).

    Classification: the top-1 class is not the true one; confidence is its probability.
    Multilabel: the decided set differs from the true set; confidence is the strongest
    wrong decision (a false positive's score, or one minus a missed label's score).
    """
    truth = truth_matrix(targets, scores.shape[1], multilabel)
    decided = decisions(scores, multilabel, threshold)
    wrong = np.flatnonzero((truth != decided).any(axis=1))
    if multilabel:
        sureness = np.where(decided, scores, 1.0 - scores)
        severity = np.where(truth != decided, sureness, -np.inf).max(axis=1)
    else:
        severity = scores.max(axis=1)
    order = wrong[np.argsort(-severity[wrong], kind="stable")][:limit]
    found = []
    for index in order:
        row = scores[index]
        chosen = np.flatnonzero(decided[index])
        chosen = chosen[np.argsort(-row[chosen], kind="stable")]
        found.append(
            Mistake(
                index=int(index),
                predicted=tuple((int(c), float(row[c])) for c in chosen),
                truth=tuple((int(c), float(row[c])) for c in np.flatnonzero(truth[index])),
                confidence=float(severity[index]),
            )
        )
    return found
