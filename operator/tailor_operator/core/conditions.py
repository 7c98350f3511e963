"""Conditions per the Kubernetes API conventions, readable by kstatus and Argo CD.

kstatus reads Reconciling=True as "in progress" and Stalled=True as "failed";
a finished job has neither true, except that a failed job is Stalled (it will
not make progress without a change from the user).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from tailor_operator.core.status import Condition, JobPhase

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
ORDER = (READY, RECONCILING, STALLED, SUCCEEDED, FAILED)

Truth = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Situation:
    """Where the job stands, in words for its conditions."""

    phase: JobPhase
    reason: str
    message: str
    stalled_reason: str | None = None  # stuck while running: needs a person
    stalled_message: str = ""


def set_condition(
    existing: Sequence[Condition],
    kind: str,
    status: Truth,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> Condition:
    """The condition, keeping its lastTransitionTime when its status did not change."""
    previous = next((c for c in existing if c.type == kind), None)
    moved = previous is None or previous.status != status
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message[:2048],
        last_transition_time=now if moved or previous is None else previous.last_transition_time,
        observed_generation=generation,
    )


def _truths(s: Situation) -> dict[str, tuple[Truth, str, str]]:
    if s.phase == JobPhase.SUCCEEDED:
        return {
            READY: ("True", s.reason, s.message),
            RECONCILING: ("False", s.reason, ""),
            STALLED: ("False", s.reason, ""),
            SUCCEEDED: ("True", s.reason, s.message),
            FAILED: ("False", s.reason, ""),
        }
    if s.phase == JobPhase.FAILED:
        return {
            READY: ("False", s.reason, s.message),
            RECONCILING: ("False", s.reason, ""),
            STALLED: ("True", s.reason, s.message),
            SUCCEEDED: ("False", s.reason, s.message),
            FAILED: ("True", s.reason, s.message),
        }
    stalled: tuple[Truth, str, str] = (
        ("True", s.stalled_reason, s.stalled_message)
        if s.stalled_reason
        else ("False", s.reason, "")
    )
    # Stuck is not working: kstatus (Flux, helm --wait) reads the first true of
    # Reconciling and Stalled, so both true would read "in progress" until a timeout.
    reconciling: tuple[Truth, str, str] = (
        ("False", s.stalled_reason, s.stalled_message)
        if s.stalled_reason
        else ("True", s.reason, s.message)
    )
    return {
        READY: ("False", s.reason, s.message),
        RECONCILING: reconciling,
        STALLED: stalled,
        SUCCEEDED: ("False", s.reason, ""),
        FAILED: ("False", s.reason, ""),
    }


def job_conditions(
    existing: Sequence[Condition], situation: Situation, generation: int, now: datetime
) -> list[Condition]:
    truths = _truths(situation)
    ours = [
        set_condition(existing, kind, *truths[kind], generation=generation, now=now)
        for kind in ORDER
    ]
    # Conditions others added (a policy engine, a user) are kept as they are.
    foreign = [c for c in existing if c.type not in ORDER]
    return ours + foreign
