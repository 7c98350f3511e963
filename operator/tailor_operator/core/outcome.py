"""How a job ends, which trial is best, and where a running job stands."""

from tailor_operator.core.conditions import Situation
from tailor_operator.core.draft import Draft
from tailor_operator.core.observe import CONFIG_FAILURES
from tailor_operator.core.pods import trial_output
from tailor_operator.core.status import (
    AttemptRecord,
    BestTrial,
    FailureReason,
    JobPhase,
    ModelStatus,
    Outcome,
    StopReason,
    TrialState,
    TrialStatus,
)

DEFAULT_METRIC = "metric"


def primary_metric(draft: Draft) -> str | None:
    named = draft.job.spec.search.primary_metric
    if named:
        return named
    return next((t.primary_metric for t in draft.status.trials if t.primary_metric), None)


def best_trial(draft: Draft, succeeded: list[TrialStatus]) -> TrialStatus:
    metric = primary_metric(draft)
    scored = [t for t in succeeded if metric and metric in t.metrics]
    if not scored or metric is None:
        return succeeded[0]
    sign = -1.0 if draft.job.spec.search.goal == "Minimize" else 1.0
    return max(scored, key=lambda t: sign * t.metrics[metric])


def _succeed(draft: Draft, succeeded: list[TrialStatus], stop: StopReason) -> None:
    status = draft.status
    best = best_trial(draft, succeeded)
    metric = primary_metric(draft) or DEFAULT_METRIC
    value = best.metrics.get(metric)
    status.best_trial = BestTrial(
        name=best.name,
        model=best.model,
        metric=metric,
        value=value,
        summary=f"{metric}={value:.4g}" if value is not None else f"{best.name} (no {metric})",
    )
    status.model = ModelStatus(
        uri=best.export_uri or trial_output(draft.job, best.name) + "export/",
        metrics=dict(best.metrics),
    )
    skipped = any(t.state == TrialState.SKIPPED for t in status.trials)
    status.stop_reason = StopReason.BUDGET_EXHAUSTED if skipped else stop
    status.phase = JobPhase.SUCCEEDED
    status.reason = status.stop_reason.value
    status.message = f"best trial {best.name} ({best.model}): {status.best_trial.summary}"
    status.completion_time = draft.now


def conclude(draft: Draft, done: StopReason | None) -> None:
    """End the job once the planner is done and every trial is final."""
    trials = draft.status.trials
    if draft.finished or done is None or not trials or not all(t.final for t in trials):
        return
    succeeded = [t for t in trials if t.state == TrialState.SUCCEEDED]
    if succeeded:
        _succeed(draft, succeeded, done)
        return
    tried = [t for t in trials if t.attempts]
    if tried and all(t.outcome == Outcome.DIVERGED for t in tried):
        draft.fail(
            FailureReason.TRAINING_DIVERGED,
            f"every trial diverged ({len(tried)}): check the learning rate and the labels",
        )
    elif not tried:
        draft.fail(
            FailureReason.BUDGET_NOT_ENOUGH,
            "the budget could not pay for any trial: " + "; ".join(t.message for t in trials[:3]),
        )
    else:
        details = "; ".join(f"{t.name}: {t.message}" for t in trials[:3])
        draft.fail(FailureReason.UNKNOWN, f"no trial succeeded. {details}")


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
