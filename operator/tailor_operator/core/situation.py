"""Where a running job stands: its phase, reason and message while it runs."""

from tailor_operator.core.conditions import Situation
from tailor_operator.core.draft import Draft
from tailor_operator.core.observe import CONFIG_FAILURES
from tailor_operator.core.status import AttemptRecord, JobPhase, TrialState


def _pending_pod_message(draft: Draft, record: AttemptRecord) -> tuple[str, str] | None:
    pod = draft.world.pods.get(record.pod)
    if pod is None or record.final:
        return None
    if pod.waiting_reason in CONFIG_FAILURES:
        return "PodConfigError", f"pod {pod.name}: {pod.waiting_message or pod.waiting_reason}"
    if pod.unschedulable_message:
        return "WaitingForGPUs", f"pod {pod.name}: {pod.unschedulable_message}"
    return None


def situation(draft: Draft) -> Situation:
    status = draft.status
    if draft.finished:
        return Situation(status.phase, status.reason or status.phase.value, status.message)
    stalled: tuple[str, str] | None = None
    waiting: tuple[str, str] | None = None
    for _, record in draft.records():
        found = _pending_pod_message(draft, record)
        if found and found[0] == "PodConfigError":
            stalled = stalled or found
        elif found:
            waiting = waiting or found
    if status.validation.state != "Succeeded":
        phase, reason = JobPhase.VALIDATING, "Validating"
        if status.validation.state == "Retrying":
            reason = "Retrying"
        message = f"validating the dataset (attempt {len(status.validation.attempts)})"
    else:
        phase, reason = JobPhase.TRAINING, "Training"
        counts = {state: 0 for state in TrialState}
        for trial in status.trials:
            counts[trial.state] += 1
        if counts[TrialState.RETRYING]:
            reason = "Retrying"
        message = (
            f"{counts[TrialState.RUNNING]} running, {counts[TrialState.QUEUED]} queued, "
            f"{counts[TrialState.RETRYING]} retrying, "
            f"{sum(1 for t in status.trials if t.final)} of {len(status.trials)} trials done"
        )
    if waiting:
        reason, message = waiting[0], f"{message}; {waiting[1]}"
    status.phase, status.reason, status.message = phase, reason, message
    return Situation(
        phase,
        reason,
        message,
        stalled_reason=stalled[0] if stalled else None,
        stalled_message=stalled[1] if stalled else "",
    )
