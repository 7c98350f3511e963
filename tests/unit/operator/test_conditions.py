import pytest

from tailor_operator.core.conditions import Situation, job_conditions, set_condition
from tailor_operator.core.status import Condition, JobPhase
from tests.unit.operator.factories import at


def truths(conditions: list[Condition]) -> dict[str, str]:
    return {c.type: c.status for c in conditions}


@pytest.mark.parametrize(
    ("situation", "expected"),
    [
        (
            Situation(JobPhase.TRAINING, "Training", "1 running"),
            {
                "Ready": "False",
                "Reconciling": "True",
                "Stalled": "False",
                "Succeeded": "False",
                "Failed": "False",
            },
        ),
        (
            # Stuck: not Reconciling, so kstatus reads Stalled (Failed) at once.
            Situation(JobPhase.TRAINING, "Training", "x", "PodConfigError", "secret missing"),
            {
                "Ready": "False",
                "Reconciling": "False",
                "Stalled": "True",
                "Succeeded": "False",
                "Failed": "False",
            },
        ),
        (
            Situation(JobPhase.SUCCEEDED, "Converged", "best t0"),
            {
                "Ready": "True",
                "Reconciling": "False",
                "Stalled": "False",
                "Succeeded": "True",
                "Failed": "False",
            },
        ),
        (
            Situation(JobPhase.FAILED, "DatasetCorrupt", "bad"),
            {
                "Ready": "False",
                "Reconciling": "False",
                "Stalled": "True",
                "Succeeded": "False",
                "Failed": "True",
            },
        ),
    ],
)
def test_conditions_for_each_situation(situation, expected) -> None:
    conditions = job_conditions([], situation, generation=4, now=at(0))
    assert truths(conditions) == expected
    assert all(c.observed_generation == 4 for c in conditions)


def test_transition_time_moves_only_when_the_status_does() -> None:
    first = [set_condition([], "Ready", "False", "Training", "", 1, at(0))]
    same = set_condition(first, "Ready", "False", "Retrying", "again", 2, at(50))
    assert same.last_transition_time == at(0)
    assert same.reason == "Retrying"
    flipped = set_condition(first, "Ready", "True", "Converged", "", 2, at(60))
    assert flipped.last_transition_time == at(60)


def test_foreign_conditions_are_kept() -> None:
    theirs = Condition(type="PolicyChecked", status="True", reason="OK", last_transition_time=at(0))
    conditions = job_conditions([theirs], Situation(JobPhase.PENDING, "Validating", ""), 1, at(5))
    assert conditions[-1] == theirs
