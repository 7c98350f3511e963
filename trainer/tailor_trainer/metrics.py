"""Classification metrics, computed the way microsoft/vision-evaluation computes them.

Plain numpy, so the trainer image needs no scikit-learn; the tests hold these against
vision-evaluation's evaluators on the same predictions. Conventions kept from it:
- precision averages over every class; recall and AP over classes with a positive;
- F1 is the harmonic mean of the averaged precision and recall;
- decisions are the top-1 class (classification) or scores >= threshold (multilabel);
- ECE uses 15 equal-width bins of top-1 confidence, each bin (lower, upper].
`log_loss` (mean negative log-likelihood of the truth, probabilities floored at 1e-12)
is Tailor's own: on a small evaluation split accuracy moves in steps of 1/n, and the
loss decides the close calls (tailor_contract.metrics.Selection).
"""

import itertools
from dataclasses import dataclass, field

import numpy as np

ECE_BINS = 15
PROBABILITY_FLOOR = 1e-12


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    confusion_matrix: list[list[int]] = field(default_factory=list)


def one_hot(targets: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((len(targets), classes), dtype=np.int64)
    matrix[np.arange(len(targets)), targets] = 1
    return matrix


def binary_average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """Area under the step precision-recall curve (no interpolation), as scikit-learn."""
    order = np.argsort(-scores, kind="mergesort")
    scores, truth = scores[order], truth[order].astype(np.float64)
    # One point per distinct score: the last index of each run of equal scores.
    last = np.r_[np.flatnonzero(np.diff(scores)), truth.size - 1]
    true_positives = np.cumsum(truth)[last]
    predicted = last + 1.0
    positives = true_positives[-1]
    if positives == 0:
        return 0.0
    precision = true_positives / predicted
    recall = true_positives / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision(truth: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(macro, micro) over the classes that have at least one positive."""
    present = truth.any(axis=0)
    if not present.any():
        return 0.0, 0.0
    per_class = [
        binary_average_precision(truth[:, c], scores[:, c]) for c in np.flatnonzero(present)
    ]
    micro = binary_average_precision(truth[:, present].ravel(), scores[:, present].ravel())
    return float(np.mean(per_class)), micro


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # scikit-learn's zero_division default: 0 where nothing was predicted or present.
    result: np.ndarray = np.divide(
        numerator, denominator, out=np.zeros(numerator.shape), where=denominator > 0
    )
    return result


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def precision_recall_f1(truth: np.ndarray, decided: np.ndarray) -> dict[str, float]:
    true_positive = (truth & decided).sum(axis=0).astype(np.float64)
    predicted = decided.sum(axis=0).astype(np.float64)
    actual = truth.sum(axis=0).astype(np.float64)
    present = actual > 0
    precision_macro = float(np.mean(_ratio(true_positive, predicted)))
    recall_macro = float(np.mean(_ratio(true_positive, actual)[present])) if present.any() else 0.0
    precision_micro = float(
        _ratio(true_positive.sum(keepdims=True), predicted.sum(keepdims=True))[0]
    )
    recall_micro = float(_ratio(true_positive.sum(keepdims=True), actual.sum(keepdims=True))[0])
    return {
        "precision_macro": precision_macro,
        "recall_macro": recall_macro,
        "f1_macro": _f1(precision_macro, recall_macro),
        "precision_micro": precision_micro,
        "recall_micro": recall_micro,
        "f1_micro": _f1(precision_micro, recall_micro),
    }


def top_k_accuracy(probabilities: np.ndarray, targets: np.ndarray, k: int) -> float:
    k = min(k, probabilities.shape[1])
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == targets[:, None], axis=1)))


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray) -> float:
    predicted = np.argmax(probabilities, axis=1)
    confidence = probabilities[np.arange(len(targets)), predicted]
    correct = (predicted == targets).astype(np.float64)
    edges = np.linspace(0, 1, ECE_BINS + 1)
    gap = 0.0
    for lower, upper in itertools.pairwise(edges):
        inside = (confidence > lower) & (confidence <= upper)
        gap += abs(correct[inside].sum() - confidence[inside].sum())
    return float(gap / len(targets))


def log_loss(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Mean -log p(true class) over the images."""
    truth = probabilities[np.arange(len(targets)), targets]
    return float(-np.mean(np.log(np.maximum(truth, PROBABILITY_FLOOR))))


def binary_log_loss(scores: np.ndarray, truth: np.ndarray) -> float:
    """Mean binary cross-entropy over every (image, class) pair."""
    p = np.clip(scores, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    t = truth.astype(np.float64)
    return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))


def confusion_matrix(predicted: np.ndarray, targets: np.ndarray, classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted ones."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (targets, predicted), 1)
    return matrix


def classification_metrics(probabilities: np.ndarray, targets: np.ndarray) -> Evaluation:
    """probabilities (N, C) summing to 1 per row; targets (N,) class indices."""
    if len(targets) == 0:
        raise ValueError("no evaluation predictions")
    classes = probabilities.shape[1]
    truth = one_hot(targets, classes).astype(bool)
    predicted = np.argmax(probabilities, axis=1)
    decided = one_hot(predicted, classes).astype(bool)
    macro, micro = average_precision(truth, probabilities)
    metrics = {
        "top1_accuracy": top_k_accuracy(probabilities, targets, 1),
        "top5_accuracy": top_k_accuracy(probabilities, targets, 5),
        "average_precision_macro": macro,
        "average_precision_micro": micro,
        "calibration_ece": expected_calibration_error(probabilities, targets),
        "log_loss": log_loss(probabilities, targets),
        **precision_recall_f1(truth, decided),
    }
    matrix = confusion_matrix(predicted, targets, classes)
    return Evaluation(metrics, matrix.tolist())


def sample_accuracy(truth: np.ndarray, decided: np.ndarray) -> float:
    """Per image: |predicted AND true| / |predicted OR true| (1 when both are empty)."""
    both = (truth & decided).sum(axis=1)
    either = (truth | decided).sum(axis=1)
    return float(np.mean(both / np.maximum(either, 1)))


def multilabel_metrics(scores: np.ndarray, truth: np.ndarray, threshold: float) -> Evaluation:
    """scores (N, C) independent probabilities; truth (N, C) in {0, 1}."""
    if len(truth) == 0:
        raise ValueError("no evaluation predictions")
    truth = truth.astype(bool)
    decided = scores >= threshold
    macro, micro = average_precision(truth, scores)
    metrics = {
        "accuracy": sample_accuracy(truth, decided),
        "log_loss": binary_log_loss(scores, truth),
        "average_precision_macro": macro,
        "average_precision_micro": micro,
        **precision_recall_f1(truth, decided),
    }
    return Evaluation(metrics)
