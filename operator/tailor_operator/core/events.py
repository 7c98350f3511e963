"""Kubernetes Events a user wants to see, derived from what changed in the status.

Derived from the difference between the status read and the status written, so
a reconciliation that changes nothing emits nothing, and a replay emits nothing.
"""

from dataclasses import dataclass
from typing import Literal

from tailor_contract.backbones import Task
from tailor_operator.core.catalog import SCRATCH_REASON, pretrained_situation
from tailor_operator.core.ledger import CHARGED
from tailor_operator.core.status import (
    AttemptPhase,
    AttemptRecord,
    JobPhase,
    TrainingJobStatus,
)


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def _lines(status: TrainingJobStatus) -> dict[str, tuple[str, AttemptRecord]]:
    lines = {r.pod: ("validation", r) for r in status.validation.attempts}
    for trial in status.trials:
        lines.update({r.pod: (f"trial {trial.name}", r) for r in trial.attempts})
    return lines


def _attempt_events(
    where: str, old: AttemptRecord | None, new: AttemptRecord, promoted: bool = False
) -> list[Event]:
    events: list[Event] = []
    label = f"{where} attempt {new.attempt}"
    if old is None:
        if promoted:
            events.append(Event("Normal", "Promoted", f"{label}: more budget, pod {new.pod}"))
        elif new.attempt > 1:
            events.append(Event("Normal", "Retrying", f"{label}: pod {new.pod}"))
        else:
            events.append(Event("Normal", "AttemptCreated", f"{label}: pod {new.pod}"))
    if new.stop_requested and (old is None or old.stop_requested != new.stop_requested):
        events.append(
            Event(
                "Warning" if new.stop_requested.value == "AllowanceExceeded" else "Normal",
                new.stop_requested.value,
                f"{label}: stopping pod {new.pod}",
            )
        )
    if new.phase == AttemptPhase.FINISHED and (old is None or old.phase != AttemptPhase.FINISHED):
        outcome = new.outcome.value if new.outcome else "Unknown"
        if new.outcome in CHARGED:
            text = f"{label} {outcome}: charged {new.charged_gpu_seconds:.0f} GPU-seconds"
            events.append(Event("Normal", "AttemptFinished", text))
        else:
            text = f"{label} {outcome}: {new.billing_reason}"
            events.append(Event("Warning", "AttemptFailed", text))
    return events


def _promotions(status: TrainingJobStatus) -> set[str]:
    """Pods of attempts that continue a trial whose previous attempt was charged (the
    search gave it more budget), as opposed to retries of a failed one."""
    return {
        later.pod
        for trial in status.trials
        for earlier, later in zip(trial.attempts, trial.attempts[1:], strict=False)
        if earlier.final and earlier.outcome in CHARGED
    }


def describe_changes(
    old: TrainingJobStatus, new: TrainingJobStatus, task: Task = "classification"
) -> list[Event]:
    events: list[Event] = []
    before = _lines(old)
    promoted = _promotions(new)
    for pod, (where, record) in _lines(new).items():
        previous = before.get(pod)
        events += _attempt_events(where, previous[1] if previous else None, record, pod in promoted)
    if old.validation.state != "Succeeded" and new.validation.state == "Succeeded":
        facts = new.validation.dataset
        detail = f": {facts.images} images, {facts.classes} classes" if facts else ""
        events.append(Event("Normal", "Validated", f"dataset validated{detail}"))
        pretrained = pretrained_situation(new, task)
        if pretrained is not None:
            truth, reason, message = pretrained
            warn = not truth and reason == SCRATCH_REASON
            events.append(Event("Warning" if warn else "Normal", reason, message))
    if old.phase != new.phase and new.phase == JobPhase.SUCCEEDED:
        events.append(Event("Normal", "Succeeded", new.message))
    if old.phase != new.phase and new.phase == JobPhase.FAILED:
        events.append(Event("Warning", new.reason or "Failed", new.message))
    return events


def settled_lines(old: TrainingJobStatus, new: TrainingJobStatus) -> list[AttemptRecord]:
    """Ledger lines that became final between two statuses (each exactly once)."""
    before = _lines(old)
    settled = []
    for pod, (_, record) in _lines(new).items():
        previous = before.get(pod)
        if record.final and (previous is None or not previous[1].final):
            settled.append(record)
    return settled
