"""core/retries.py on its own: which outcomes are retried, when, and when retrying stops."""

from dataclasses import replace

import pytest

from tailor_operator.core.retries import (
    ENDS_THE_JOB,
    RETRIED,
    Retry,
    backoff_seconds,
    current_rung,
    decide,
    waived_attempts,
)
from tailor_operator.core.status import (
    AttemptPhase,
    AttemptRecord,
    Billing,
    FailureReason,
    Outcome,
)
from tests.unit.operator.factories import POLICY, at


def record(
    n: int, outcome: Outcome, billing: Billing = Billing.WAIVED, finished: float = 100
) -> AttemptRecord:
    return AttemptRecord(
        attempt=n,
        pod=f"p-{n}",
        created_at=at(0),
        phase=AttemptPhase.FINISHED,
        finished_at=at(finished),
        outcome=outcome,
        billing=billing,
        billing_reason=f"{outcome.value} happened",
    )


@pytest.mark.parametrize(
    ("failures", "expected"), [(0, 0), (1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (500, 100)]
)
def test_backoff_doubles_up_to_the_cap(failures: int, expected: float) -> None:
    assert backoff_seconds(failures, base=10, cap=100) == expected


# One row per situation: the attempts of a trial, the waived attempts of the job so
# far, `now`, and what must follow. POLICY: 3 attempts, backoff 10 s doubling to 60 s.
CASES = [
    ("first eviction: retried after 10 s", [(Outcome.EVICTED, 100)], 1, 110, Retry(now=True)),
    (
        "first eviction, too soon",
        [(Outcome.EVICTED, 100)],
        1,
        105,
        Retry(wait_until=at(110)),
    ),
    (
        "second failure in a row waits 20 s",
        [(Outcome.CRASHED, 50), (Outcome.NODE_LOST, 100)],
        2,
        115,
        Retry(wait_until=at(120)),
    ),
    (
        "the system's OOM is retried",
        [(Outcome.OOM_KILLED, 100)],
        1,
        200,
        Retry(now=True),
    ),
]


@pytest.mark.parametrize(
    ("attempts", "waived", "now", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_retry_decisions(
    attempts: list[tuple[Outcome, float]], waived: int, now: float, expected: Retry
) -> None:
    records = [record(i + 1, o, finished=f) for i, (o, f) in enumerate(attempts)]
    assert decide(records, POLICY, at(now), waived) == expected


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.DELETED,  # a person's delete: charged, the trial ends
        Outcome.OOM_KILLED_USER_CONFIG,  # the user's own configuration: theirs to fix
        Outcome.INVALID_CONFIG,
        Outcome.DATASET_CORRUPT,
        Outcome.DIVERGED,
        Outcome.EXPORT_REFUSED,  # the same weights would be refused again
        Outcome.CANCELLED,
    ],
)
def test_what_a_user_did_or_another_attempt_would_repeat_is_never_retried(
    outcome: Outcome,
) -> None:
    decision = decide([record(1, outcome)], POLICY, at(1000), 0)
    assert not decision.now
    assert decision.wait_until is None
    assert outcome.value in decision.gave_up


def test_a_search_chosen_configuration_killed_for_memory_twice_in_a_row_is_not_retried() -> None:
    # Once may be the node (SPEC's system OOM); twice, the configuration itself.
    assert decide([record(1, Outcome.OOM_KILLED)], POLICY, at(1000), 1).now
    twice = [record(1, Outcome.OOM_KILLED), record(2, Outcome.OOM_KILLED)]
    decision = decide(twice, POLICY, at(1000), 2)
    assert not decision.now
    assert decision.wait_until is None
    assert decision.gave_up.startswith("gave up after 2 out-of-memory kills in a row")
    assert "TAILOR_MEMORY_GIB_PER_GPU" in decision.gave_up
    assert "OOMKilled happened" in decision.gave_up
    # Not in a row: an eviction between them leaves the OOM a first one again.
    apart = [
        record(1, Outcome.OOM_KILLED),
        record(2, Outcome.EVICTED),
        record(3, Outcome.OOM_KILLED),
    ]
    assert decide(apart, replace(POLICY, max_attempts=5), at(1000), 3).now


def test_the_attempt_limit_counts_the_rung() -> None:
    rung = [record(i, Outcome.EVICTED) for i in (1, 2, 3)]
    decision = decide(rung, POLICY, at(1000), 3)
    assert decision.gave_up.startswith("gave up after 3 attempts")
    assert "Evicted happened" in decision.gave_up


def test_the_job_wide_bound_on_waived_attempts_stops_retries() -> None:
    policy = replace(POLICY, max_waived_attempts=4)
    assert decide([record(1, Outcome.PREEMPTED)], policy, at(1000), 3).now
    stopped = decide([record(1, Outcome.PREEMPTED)], policy, at(1000), 4)
    assert "4 waived attempts" in stopped.gave_up
    assert "TAILOR_MAX_WAIVED_ATTEMPTS" in stopped.gave_up


def test_a_promotion_starts_a_fresh_window() -> None:
    attempts = [
        record(1, Outcome.EVICTED),
        record(2, Outcome.COMPLETED, Billing.CHARGED),
        record(3, Outcome.EVICTED),
    ]
    assert [r.attempt for r in current_rung(attempts)] == [3]
    assert [r.attempt for r in current_rung(attempts[:1])] == [1]


def test_waived_attempts_counts_finished_waivers_only() -> None:
    running = AttemptRecord(attempt=9, pod="p-9", created_at=at(0))
    records = [record(1, Outcome.EVICTED), record(2, Outcome.COMPLETED, Billing.CHARGED), running]
    assert waived_attempts(records) == 1


def test_retried_and_job_ending_outcomes_are_disjoint_and_say_why() -> None:
    assert not RETRIED & set(ENDS_THE_JOB)
    assert ENDS_THE_JOB[Outcome.INVALID_CONFIG] == FailureReason.INVALID_SPEC
