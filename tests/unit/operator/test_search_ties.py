"""The search ranks rung results by the metric, a difference the evaluation split cannot
resolve going to the lower log loss (tailor_contract.metrics.Selection)."""

from tailor_contract.metrics import Selection
from tailor_operator.core.search import asha
from tailor_operator.core.status import (
    AttemptPhase,
    AttemptRecord,
    Billing,
    Outcome,
    TrialState,
    TrialStatus,
)
from tests.unit.operator.factories import at

METRIC = "top1_accuracy"
EXACT = Selection(METRIC, 1.0, None)  # an evaluation split of unknown size: exact ties


def trial(name: str, metrics: dict[str, float]) -> TrialStatus:
    record = AttemptRecord(
        attempt=1,
        pod=f"{name}-1",
        created_at=at(0),
        finished_at=at(10),
        phase=AttemptPhase.FINISHED,
        outcome=Outcome.COMPLETED,
        billing=Billing.CHARGED,
        metrics=metrics,
    )
    return TrialStatus(name=name, model="m", state=TrialState.SUCCEEDED, attempts=[record])


def test_a_tie_of_the_metric_goes_to_the_lower_log_loss() -> None:
    standings = [
        asha.standing(trial("t0", {METRIC: 0.85, "log_loss": 0.9}), METRIC, 1.0),
        asha.standing(trial("t1", {METRIC: 0.85, "log_loss": 0.4}), METRIC, 1.0),
        asha.standing(trial("t2", {METRIC: 0.80, "log_loss": 0.1}), METRIC, 1.0),
    ]
    leader = asha.best(standings, EXACT)
    assert leader is not None
    assert leader.trial.name == "t1"


def test_without_a_tie_the_metric_decides() -> None:
    standings = [
        asha.standing(trial("t0", {METRIC: 0.90, "log_loss": 2.0}), METRIC, 1.0),
        asha.standing(trial("t1", {METRIC: 0.85, "log_loss": 0.1}), METRIC, 1.0),
    ]
    leader = asha.best(standings, EXACT)
    assert leader is not None
    assert leader.trial.name == "t0"


def test_on_twenty_evaluation_images_one_image_apart_is_a_close_call() -> None:
    standings = [
        asha.standing(trial("t0", {METRIC: 0.90, "log_loss": 0.84}), METRIC, 1.0),
        asha.standing(trial("t1", {METRIC: 0.85, "log_loss": 0.52}), METRIC, 1.0),
    ]
    leader = asha.best(standings, Selection(METRIC, 1.0, 20))
    assert leader is not None
    assert leader.trial.name == "t1"
    leader = asha.best(standings, Selection(METRIC, 1.0, 2000))
    assert leader is not None
    assert leader.trial.name == "t0"
