"""The ledger: outcomes, charges, waivers and totals, by table and by property."""

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor_operator.core.attempts import observe
from tailor_operator.core.ledger import CHARGED, available, classify, settle, totals, unique_records
from tailor_operator.core.observe import ContainerEnd, parse_pod
from tailor_operator.core.status import AttemptPhase, AttemptRecord, Billing, Outcome, StopRequest
from tests.unit.operator.factories import NODES, POLICY, TABLE, at, pod_json


def end(code: int, reason: str = "Error") -> ContainerEnd:
    return ContainerEnd(
        exit_code=code, reason=reason, message="", started_at=at(0), finished_at=at(9)
    )


@pytest.mark.parametrize(
    ("container", "stop", "disruption", "deleted", "expected"),
    [
        (end(0, "Completed"), None, None, False, Outcome.COMPLETED),
        (end(0, "Completed"), None, "EvictionByEvictionAPI", True, Outcome.COMPLETED),
        (end(65), None, None, False, Outcome.DATASET_CORRUPT),
        (end(66), None, None, False, Outcome.DATASET_NOT_FOUND),
        (end(67), None, None, False, Outcome.BUDGET_NOT_ENOUGH),
        (end(68), None, None, False, Outcome.DIVERGED),
        (end(68), StopRequest.ALLOWANCE_EXCEEDED, None, False, Outcome.DIVERGED),
        (end(70), None, None, False, Outcome.EXPORT_REFUSED),
        (end(143), StopRequest.ALLOWANCE_EXCEEDED, None, False, Outcome.STOPPED_AT_ALLOWANCE),
        (end(75), StopRequest.EARLY_STOPPED, None, False, Outcome.EARLY_STOPPED),
        (end(143), StopRequest.CANCELLED, None, False, Outcome.CANCELLED),
        (None, StopRequest.IMAGE_PULL_FAILED, None, False, Outcome.IMAGE_PULL_FAILED),
        (end(143), None, "EvictionByEvictionAPI", True, Outcome.EVICTED),
        (end(75), None, "EvictionByEvictionAPI", True, Outcome.EVICTED),
        (end(143), None, "PreemptionByScheduler", True, Outcome.PREEMPTED),
        (None, None, "DeletionByTaintManager", True, Outcome.NODE_LOST),
        (None, None, "DeletionByPodGC", True, Outcome.NODE_LOST),
        (end(143), None, "SomethingNew", True, Outcome.EVICTED),
        (end(143), None, None, True, Outcome.DELETED),
        (end(75), None, None, False, Outcome.RETRYABLE),
        (end(137, "OOMKilled"), None, None, False, Outcome.OOM_KILLED),
        (end(1), None, None, False, Outcome.CRASHED),
        (end(139), None, None, False, Outcome.CRASHED),
        (None, None, None, False, Outcome.CRASHED),
    ],
)
def test_classify(container, stop, disruption, deleted, expected) -> None:
    outcome, detail = classify(container, stop, disruption, deleted)
    assert outcome == expected
    assert detail


def test_signal_kills_are_named_in_the_detail() -> None:
    assert classify(end(139), None, None, False)[1] == "exit 139 (KILLED_BY_SIGNAL_11)"


def record(**fields) -> AttemptRecord:
    base = {
        "attempt": 1,
        "pod": "p",
        "created_at": at(0),
        "gpus": 2,
        "calibration_factor": 1.5,
        "allowance_gpu_seconds": 1000.0,
    }
    return AttemptRecord.model_validate(base | fields)


@pytest.mark.parametrize(
    ("outcome", "run_seconds", "charged", "waived"),
    [
        (Outcome.COMPLETED, 100, 300, 30),  # 100 s x 2 GPUs x 1.5; 10 s held before start
        (Outcome.DIVERGED, 100, 300, 30),
        (Outcome.STOPPED_AT_ALLOWANCE, 400, 1000, 230),  # capped at the allowance
        (Outcome.EVICTED, 100, 0, 330),
        (Outcome.EXPORT_REFUSED, 100, 0, 330),  # the system's exporter failed, not the job
        (Outcome.CRASHED, 0, 0, 30),
    ],
)
def test_settle(outcome, run_seconds, charged, waived) -> None:
    settled = settle(
        record(scheduled_at=at(-10)),
        outcome,
        "d",
        started=at(0),
        finished=at(run_seconds),
        exit_code=0,
    )
    assert settled.final
    assert settled.charged_gpu_seconds == pytest.approx(charged)
    assert settled.waived_gpu_seconds == pytest.approx(waived)
    assert settled.billing == (Billing.CHARGED if outcome in CHARGED else Billing.WAIVED)
    assert settled.billing_reason.startswith("charged" if outcome in CHARGED else "waived")


def test_totals_reserve_unfinished_gpu_attempts_only() -> None:
    lines = [
        record(pod="a"),  # running: reserved
        record(pod="v", gpus=0),  # validation: no reservation
        settle(
            record(pod="b"), Outcome.COMPLETED, "", started=at(0), finished=at(100), exit_code=0
        ),
    ]
    budget = totals(3600, lines)
    assert (budget.charged_gpu_seconds, budget.reserved_gpu_seconds) == (300, 1000)
    assert available(budget) == 3600 - 300 - 1000
    assert budget.summary == "0.08/1.00"


def test_totals_never_charge_above_the_limit_and_waive_the_rest() -> None:
    lines = [
        settle(
            record(pod=f"p{i}"), Outcome.COMPLETED, "", started=at(0), finished=at(300), exit_code=0
        )
        for i in range(3)
    ]
    budget = totals(2000, lines)
    assert budget.charged_gpu_seconds == 2000
    assert budget.waived_gpu_seconds == pytest.approx(3 * 900 - 2000)


def test_a_final_line_wins_over_an_unfinished_copy() -> None:
    running = record(pod="a", phase=AttemptPhase.RUNNING)
    done = settle(running, Outcome.COMPLETED, "", started=at(0), finished=at(10), exit_code=0)
    assert unique_records([done, running]) == [done]
    assert unique_records([running, done]) == [done]


outcomes = st.sampled_from(list(Outcome))
lines = st.builds(
    lambda i, o, run, held, gpus, factor, allowance: settle(
        record(
            pod=f"p{i}",
            gpus=gpus,
            calibration_factor=factor,
            allowance_gpu_seconds=allowance,
            scheduled_at=at(-held),
        ),
        o,
        "",
        started=at(0),
        finished=at(run),
        exit_code=0,
    ),
    st.integers(0, 6),
    outcomes,
    st.integers(0, 10_000),
    st.integers(0, 600),
    st.integers(1, 8),
    st.sampled_from([0.5, 1.0, 2.2]),
    st.floats(1, 50_000),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(lines, max_size=12), st.floats(1, 100_000))
def test_charged_never_exceeds_the_limit_nor_an_attempt_its_allowance(records, limit) -> None:
    budget = totals(limit, records)
    assert 0 <= budget.charged_gpu_seconds <= round(limit, 3)
    for line in records:
        assert line.charged_gpu_seconds <= line.allowance_gpu_seconds + 0.001
        if line.outcome not in CHARGED:
            assert line.charged_gpu_seconds == 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(lines, max_size=12, unique_by=lambda r: r.pod),
    st.randoms(use_true_random=False),
    st.data(),
)
def test_totals_ignore_order_and_duplicates(records, rng, data) -> None:
    extra = data.draw(st.lists(st.sampled_from(records), max_size=6)) if records else []
    shuffled = records + extra
    rng.shuffle(shuffled)
    # Duplicates of one pod are the same line, so the totals equal those of unique lines.
    expected = totals(5000, unique_records(records))
    assert totals(5000, shuffled) == expected


@settings(max_examples=200, deadline=None)
@given(
    outcomes,
    st.integers(0, 10_000),
    st.integers(0, 600),
    st.integers(1, 8),
    st.sampled_from([0.5, 1.0, 2.2]),
    st.floats(1, 50_000),
)
def test_every_gpu_second_held_is_either_charged_or_waived(
    outcome, run, held, gpus, factor, allowance
) -> None:
    line = settle(
        record(
            gpus=gpus,
            calibration_factor=factor,
            allowance_gpu_seconds=allowance,
            scheduled_at=at(-held),
        ),
        outcome,
        "",
        started=at(0),
        finished=at(run),
        exit_code=0,
    )
    held_gpu_seconds = (run + held) * gpus * factor
    assert line.charged_gpu_seconds + line.waived_gpu_seconds == pytest.approx(
        held_gpu_seconds, abs=0.002
    )
    assert line.gpu_seconds == pytest.approx(run * gpus * factor, abs=0.001)


LIFECYCLE = st.tuples(
    st.integers(0, 100),  # scheduled
    st.integers(0, 100),  # start delay
    st.integers(0, 10_000),  # run
    st.sampled_from([0, 1, 65, 68, 75, 137, 143]),
    st.sampled_from([None, "EvictionByEvictionAPI", "DeletionByTaintManager"]),
    st.sampled_from(["gpu-a", "gpu-h", "gpu-x"]),
)


def observations(
    scheduled: int, delay: int, run: int, code: int, disruption: str | None, node: str
) -> list[dict[str, Any]]:
    started, finished = scheduled + delay, scheduled + delay + run
    return [
        pod_json("p", phase="Pending"),
        pod_json("p", phase="Pending", node=node, scheduled=scheduled),
        pod_json("p", phase="Running", node=node, scheduled=scheduled, started=started),
        pod_json(
            "p",
            phase="Succeeded" if code == 0 else "Failed",
            node=node,
            scheduled=scheduled,
            started=started,
            finished=finished,
            exit_code=code,
            disruption=disruption,
            deleting=finished if disruption else None,
        ),
    ]


@settings(max_examples=200, deadline=None)
@given(LIFECYCLE, st.data())
def test_a_settled_line_does_not_depend_on_the_order_observations_arrive(lifecycle, data) -> None:
    """Watch events may be replayed, duplicated or reordered (relists, restarts)."""
    seen = observations(*lifecycle)
    extra = data.draw(st.lists(st.sampled_from(seen), max_size=8))
    order = data.draw(st.permutations(seen + extra))
    start = record(pod="p", gpus=1, calibration_factor=None, allowance_gpu_seconds=10**9)
    now = at(20_000)

    def fold(sequence: list[dict[str, Any]]) -> AttemptRecord:
        line = start
        for raw in sequence:
            line = observe(line, parse_pod(raw), NODES, TABLE, POLICY, now).record
        return line

    settled = fold(order)
    assert settled.final
    assert settled == fold(seen)  # the order a kubelet would report them in
    assert settled.charged_gpu_seconds <= settled.gpu_seconds
    assert settled.finished_at is not None
    assert settled.finished_at - now < timedelta(0)
