"""Metrics parity: the trainer's numpy metrics against vision-evaluation, same predictions."""

from typing import Any

import numpy as np
import pytest
from vision_evaluation import (  # type: ignore[import-untyped]
    AveragePrecisionEvaluator,
    ConfusionMatrixEvaluator,
    EceLossEvaluator,
    F1ScoreEvaluator,
    ThresholdAccuracyEvaluator,
    TopKAccuracyEvaluator,
)
from vision_evaluation.prediction_filters import (  # type: ignore[import-untyped]
    ThresholdPredictionFilter,
    TopKPredictionFilter,
)

from tailor_trainer.metrics import classification_metrics, multilabel_metrics

TOLERANCE = 1e-6


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return result


def _report(
    evaluator: Any, predictions: np.ndarray, targets: np.ndarray, **kwargs: Any
) -> dict[str, Any]:
    evaluator.add_predictions(predictions, targets)
    report: dict[str, Any] = evaluator.get_report(**kwargs)
    return report


def _reference_classification(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    top1 = TopKPredictionFilter(1)
    expected = {
        "top1_accuracy": _report(TopKAccuracyEvaluator(1), probabilities, targets)["accuracy_top1"],
        "top5_accuracy": _report(TopKAccuracyEvaluator(5), probabilities, targets)["accuracy_top5"],
        "calibration_ece": _report(EceLossEvaluator(), probabilities, targets)["calibration_ece"],
    }
    for average in ("macro", "micro"):
        ap = _report(AveragePrecisionEvaluator(), probabilities, targets, average=average)
        expected[f"average_precision_{average}"] = ap["average_precision"]
        f1 = _report(F1ScoreEvaluator(top1), probabilities, targets, average=average)
        expected[f"precision_{average}"] = f1["precision_top1"]
        expected[f"recall_{average}"] = f1["recall_top1"]
        expected[f"f1_{average}"] = f1["f1_score_top1"]
    return expected


def _assert_same(actual: dict[str, float], expected: dict[str, float]) -> None:
    # log_loss is Tailor's own (vision-evaluation has none): tested against scikit-learn below.
    assert set(actual) - {"log_loss"} == set(expected)
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=TOLERANCE), name


@pytest.mark.parametrize(
    ("samples", "classes", "signal", "seed"),
    [
        (200, 10, 2.0, 0),  # a decent model
        (57, 7, 0.0, 1),  # chance level
        (300, 3, 5.0, 2),  # nearly perfect: top-5 > classes, steep calibration bins
        (40, 12, 1.0, 3),  # classes with no sample, which recall and AP must skip
    ],
)
def test_classification_metrics_match_vision_evaluation(samples, classes, signal, seed):
    generator = np.random.default_rng(seed)
    targets = generator.integers(0, classes, samples)
    logits = generator.normal(size=(samples, classes))
    logits[np.arange(samples), targets] += signal
    probabilities = _softmax(logits)

    ours = classification_metrics(probabilities, targets)

    _assert_same(ours.metrics, _reference_classification(probabilities, targets))
    matrix = _report(
        ConfusionMatrixEvaluator(),
        np.argmax(probabilities, axis=1),
        targets,
        labels=list(range(classes)),
    )["confusion_matrix"]["cm"]
    assert np.array_equal(np.asarray(ours.confusion_matrix), matrix)


def test_tied_scores_count_as_one_threshold_like_scikit_learn():
    # Rounded scores produce many ties, where the precision-recall steps are easy to get wrong.
    generator = np.random.default_rng(7)
    targets = generator.integers(0, 4, 120)
    probabilities = np.round(_softmax(generator.normal(size=(120, 4)) * 0.5), 1)
    probabilities[:, 0] += 1 - probabilities.sum(axis=1)
    ours = classification_metrics(probabilities, targets)
    for average in ("macro", "micro"):
        expected = _report(AveragePrecisionEvaluator(), probabilities, targets, average=average)
        assert ours.metrics[f"average_precision_{average}"] == pytest.approx(
            expected["average_precision"], abs=TOLERANCE
        )


@pytest.mark.parametrize(("threshold", "seed"), [(0.5, 0), (0.3, 1), (0.8, 2)])
def test_multilabel_metrics_match_vision_evaluation(threshold, seed):
    generator = np.random.default_rng(seed)
    samples, classes = 150, 6
    truth = (generator.random((samples, classes)) < 0.3).astype(int)
    truth[:, 5] = 0  # a class never present
    scores = 1 / (1 + np.exp(-(generator.normal(size=(samples, classes)) + 2.5 * (truth - 0.5))))

    ours = multilabel_metrics(scores, truth, threshold)

    decide = ThresholdPredictionFilter(threshold)
    key = decide.identifier
    expected = {
        "accuracy": _report(ThresholdAccuracyEvaluator(threshold), scores, truth)[f"accuracy_{key}"]
    }
    for average in ("macro", "micro"):
        ap = _report(AveragePrecisionEvaluator(), scores, truth, average=average)
        expected[f"average_precision_{average}"] = ap["average_precision"]
        f1 = _report(F1ScoreEvaluator(decide), scores, truth, average=average)
        expected[f"precision_{average}"] = f1[f"precision_{key}"]
        expected[f"recall_{average}"] = f1[f"recall_{key}"]
        expected[f"f1_{average}"] = f1[f"f1_score_{key}"]
    _assert_same(ours.metrics, expected)


def test_metrics_refuse_an_empty_evaluation():
    with pytest.raises(ValueError, match="no evaluation predictions"):
        classification_metrics(np.zeros((0, 3)), np.zeros(0, dtype=int))


def test_log_loss_is_the_mean_negative_log_likelihood_of_the_truth():
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(40, 5))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    targets = rng.integers(0, 5, size=40)
    got = classification_metrics(probabilities, targets).metrics["log_loss"]
    assert got == pytest.approx(log_loss(targets, probabilities, labels=range(5)), rel=1e-9)
    scores = rng.uniform(size=(40, 5))
    truth = rng.integers(0, 2, size=(40, 5))
    multilabel = multilabel_metrics(scores, truth, 0.5).metrics["log_loss"]
    assert multilabel == pytest.approx(log_loss(truth.ravel(), scores.ravel()), rel=1e-9)


def test_a_confident_mistake_costs_more_log_loss_at_equal_accuracy():
    targets = np.array([0, 1])
    hedged = np.array([[0.6, 0.4], [0.6, 0.4]])  # one right, one wrong, unsure
    confident = np.array([[0.99, 0.01], [0.99, 0.01]])  # same decisions, sure of both
    a, b = classification_metrics(hedged, targets), classification_metrics(confident, targets)
    assert a.metrics["top1_accuracy"] == b.metrics["top1_accuracy"] == 0.5
    assert a.metrics["log_loss"] < b.metrics["log_loss"]
