"""Why an attempt is retried, when, and when retrying stops.

"Why was this attempt retried?" is answered here and only here. Only what the
infrastructure or the system did is retried (RETRIED): with exponential backoff,
resuming from the trial's checkpoint, at most `policy.max_attempts` attempts per
rung of a trial and at most `policy.max_waived_attempts` waived attempts per job,
so no one (a flaky node, a user deleting pods) can buy free GPU time without end.
Outcomes in ENDS_THE_JOB are never retried: another attempt would fail the same way.
What each outcome costs is core/ledger.py's question.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tailor_operator.core.policy import Policy
from tailor_operator.core.status import AttemptRecord, Billing, FailureReason, Outcome

RETRIED = frozenset(
    {
        Outcome.EVICTED,
        Outcome.PREEMPTED,
        Outcome.NODE_LOST,
        Outcome.IMAGE_PULL_FAILED,
        Outcome.OOM_KILLED,
        Outcome.RETRYABLE,
        Outcome.CRASHED,
        Outcome.LOST,
    }
)
# The job's own inputs are wrong: every other attempt would repeat it.
ENDS_THE_JOB = {
    Outcome.DATASET_NOT_FOUND: FailureReason.DATASET_NOT_FOUND,
    Outcome.DATASET_CORRUPT: FailureReason.DATASET_CORRUPT,
    Outcome.BUDGET_NOT_ENOUGH: FailureReason.BUDGET_NOT_ENOUGH,
    Outcome.INVALID_CONFIG: FailureReason.INVALID_SPEC,
}


# Out-of-memory kills of a configuration the search chose, in a row, after which the
# trial ends (waived): one retry, since the kubelet's OOMKilled does not tell the pod's
# own limit from a node out of memory (which another attempt may not meet), but the
# same configuration killed again would be killed every time.
SEARCH_OOM_KILLS = 2


def backoff_seconds(failures: int, base: float, cap: float) -> float:
    """Delay after the n-th failure in a row: base, 2*base, 4*base, ... at most cap."""
    if failures < 1:
        return 0.0
    # Bounded exponent: 2**1000 would overflow a float long before the cap applies.
    return float(min(cap, base * 2 ** min(failures - 1, 60)))


def current_rung(attempts: Sequence[AttemptRecord]) -> list[AttemptRecord]:
    """The attempts since the last charged one: a promotion starts its window afresh."""
    charged = [i for i, r in enumerate(attempts) if r.billing == Billing.CHARGED]
    return list(attempts[charged[-1] + 1 :] if charged else attempts)


def waived_attempts(records: Iterable[AttemptRecord]) -> int:
    """Finished attempts of a job that were waived (what the bound counts)."""
    return sum(1 for r in records if r.final and r.billing == Billing.WAIVED)


def _in_a_row(attempts: Sequence[AttemptRecord], counts: Callable[[AttemptRecord], bool]) -> int:
    """How many of the last attempts, back from the newest, `counts` accepts."""
    total = 0
    for record in reversed(attempts):
        if not counts(record):
            break
        total += 1
    return total


@dataclass(frozen=True)
class Retry:
    """Start another attempt now; or at `wait_until`; or never, because `gave_up`."""

    now: bool = False
    wait_until: datetime | None = None
    gave_up: str = ""


def decide(
    attempts: Sequence[AttemptRecord], policy: Policy, now: datetime, waived_in_job: int
) -> Retry:
    """What follows the last (finished, waived, RETRIED) attempt of `attempts`."""
    last = attempts[-1]
    if last.outcome not in RETRIED:
        return Retry(gave_up=f"{last.outcome.value if last.outcome else 'unknown'} is not retried")
    if _in_a_row(attempts, lambda r: r.outcome == Outcome.OOM_KILLED) >= SEARCH_OOM_KILLS:
        return Retry(
            gave_up=(
                f"gave up after {SEARCH_OOM_KILLS} out-of-memory kills in a row: the "
                f"configuration the search chose does not fit the pod's memory "
                f"(TAILOR_MEMORY_GIB_PER_GPU); not charged (last: {last.billing_reason})"
            )
        )
    if len(attempts) >= policy.max_attempts:
        return Retry(
            gave_up=(
                f"gave up after {len(attempts)} attempts failed for reasons outside the job "
                f"(last: {last.billing_reason})"
            )
        )
    if waived_in_job >= policy.max_waived_attempts:
        return Retry(
            gave_up=(
                f"not retried: the job has had {waived_in_job} waived attempts, the most "
                f"allowed (TAILOR_MAX_WAIVED_ATTEMPTS) (last: {last.billing_reason})"
            )
        )
    failures = _in_a_row(attempts, lambda r: r.billing == Billing.WAIVED)
    delay = backoff_seconds(failures, policy.backoff_base_seconds, policy.backoff_max_seconds)
    at = (last.finished_at or now) + timedelta(seconds=delay)
    return Retry(now=True) if now >= at else Retry(wait_until=at)
