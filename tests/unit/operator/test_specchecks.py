"""core/specchecks.py on its own: what the CRD schema cannot check, named by field."""

from typing import Any

import pytest

from tailor_operator.core.models import parse_trainingjob
from tailor_operator.core.specchecks import spec_problem
from tests.unit.operator.factories import job_json

CASES = [
    ("defaults run", {}, None),
    ("a metric of the task", {"search": {"primaryMetric": "f1_macro"}}, None),
    ("a metric to minimise, no goal", {"search": {"primaryMetric": "calibration_ece"}}, None),
    (
        "a metric the task has not",
        {"task": "multilabel", "search": {"primaryMetric": "top1_accuracy"}},
        "spec.search.primaryMetric: metric 'top1_accuracy' is not reported for task 'multilabel'",
    ),
    (
        "a goal against the metric's direction",
        {"search": {"primaryMetric": "calibration_ece", "goal": "Maximize"}},
        "spec.search.goal: Maximize contradicts calibration_ece, which is minimised",
    ),
    (
        "a goal against the default metric",
        {"search": {"goal": "Minimize"}},
        "spec.search.goal: Minimize contradicts top1_accuracy, which is maximised",
    ),
    ("the goal the metric has anyway", {"search": {"goal": "Maximize"}}, None),
    ("detection searched: only data and a budget", {"task": "detection"}, None),
    (
        "detection with a listed trial",
        {"task": "detection", "search": {"trials": [{"model": "resnet18"}]}},
        None,
    ),
    (
        "a classification metric for detection",
        {"task": "detection", "search": {"primaryMetric": "top1_accuracy"}},
        "spec.search.primaryMetric: metric 'top1_accuracy' is not reported for task 'detection'",
    ),
    (
        "hyperparameters the trainer refuses",
        {"search": {"trials": [{"model": "resnet18", "hyperparameters": {"lr": -1}}]}},
        "spec.search.trials[0].hyperparameters.lr",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_spec_problems(overrides: dict[str, Any], expected: str | None) -> None:
    problem = spec_problem(parse_trainingjob(job_json(**overrides)).spec)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(expected), problem
