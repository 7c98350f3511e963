"""The cheap references a search must beat before it may call itself done.

A model is worth delivering only if it does better than what needs little or no
learning. The majority class is known from validation's facts alone, and so is the
pixel reference (a logistic regression on 16 x 16 thumbnails, fitted and scored by
validation on the trials' own splits); a detector that finds nothing scores 0 on every
box metric; the linear probe on a frozen catalogued backbone is run by the search
itself as its first trial, so it is in the search's own history and needs no floor here.
"""

from tailor_contract import METRICS, DatasetFacts

# Metrics that always answering the majority class, and the pixel reference, score as
# validation reports them (top-1 on the evaluation split).
_TOP1_SCORED = frozenset({"top1_accuracy"})
DEFAULT_METRIC = {"classification": "top1_accuracy", "detection": "map"}


def reference_floor(facts: DatasetFacts, task: str, metric: str | None) -> float | None:
    """The best score of the cheap references, for the metric the search ranks by:
    always answering the most common class, the pixel reference; for detection,
    detecting nothing (0). None where the metric has no such reference (AP of a
    classifier, a loss, multilabel)."""
    name = metric or DEFAULT_METRIC.get(task)
    if task == "detection" and name in METRICS["detection"]:
        return 0.0
    if name not in _TOP1_SCORED:
        return None
    known = [v for v in (facts.majority_fraction, facts.pixel_reference) if v is not None]
    return max(known) if known else None


def pixel_reference(facts: DatasetFacts, task: str, metric: str | None) -> float | None:
    """The pixel reference where the search's metric is what it scored (top-1)."""
    name = metric or DEFAULT_METRIC.get(task)
    return facts.pixel_reference if name in _TOP1_SCORED else None
