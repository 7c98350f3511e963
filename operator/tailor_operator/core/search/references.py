"""The cheap references a search must beat before it may call itself done.

A model is worth delivering only if it does better than what needs no learning at
all. The majority class is known from validation's facts alone; a detector that finds
nothing scores 0 on every box metric; the linear probe on a frozen catalogued backbone
is run by the search itself as its first trial, so it is in the search's own history
and needs no floor here.
"""

from tailor_contract import METRICS, DatasetFacts

# Metrics that always answering the majority class scores as its share of the data.
_MAJORITY_SCORED = frozenset({"top1_accuracy"})
DEFAULT_METRIC = {"classification": "top1_accuracy", "detection": "map"}


def reference_floor(facts: DatasetFacts, task: str, metric: str | None) -> float | None:
    """The score of what needs no learning, for the metric the search ranks by: always
    answering the most common class; for detection, detecting nothing (0). None where
    the metric has no such reference (AP of a classifier, a loss, multilabel)."""
    name = metric or DEFAULT_METRIC.get(task)
    if task == "detection" and name in METRICS["detection"]:
        return 0.0
    if name not in _MAJORITY_SCORED or facts.majority_fraction is None:
        return None
    return facts.majority_fraction
