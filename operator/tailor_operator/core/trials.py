"""Trials: ask the planner, follow each trial's attempts, start what the budget allows.

A promotion (the search giving a succeeded trial more budget) raises the trial's
cumulative allowance and queues it again: its next attempt resumes from the trial's
checkpoint and reserves only what the trial has not been charged yet.
"""

import hashlib

from tailor_contract import AttemptResult
from tailor_operator.core.attempts import request_stop
from tailor_operator.core.draft import Draft
from tailor_operator.core.ledger import DID_THE_WORK, available, hours, why_it_ended
from tailor_operator.core.planner import (
    PlannerDecision,
    PlannerView,
    check_promotions,
    check_proposals,
)
from tailor_operator.core.result import delivered
from tailor_operator.core.retries import RETRIED, current_rung, decide, waived_attempts
from tailor_operator.core.specchecks import hyperparameter_problem
from tailor_operator.core.status import (
    AttemptRecord,
    StopRequest,
    TrialState,
    TrialStatus,
)
from tailor_operator.core.validation import failure_for, failure_message

EPSILON = 1e-6


def record_trial_result(
    trial: TrialStatus, record: AttemptRecord, result: AttemptResult | None
) -> AttemptRecord:
    """Keep what the trainer reported; the record gains where its training stands."""
    if result is None:
        return record
    if result.primary_metric:
        trial.primary_metric = result.primary_metric
    if result.epochs > 0:
        return record.model_copy(update={"epochs": round(result.epochs, 4)})
    return record


def job_seed(uid: str) -> int:
    """A seed for the planner's random choices: stable for the job, different per job."""
    return int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16)


def _last_success(trial: TrialStatus) -> AttemptRecord | None:
    return next(
        (r for r in reversed(trial.attempts) if r.final and r.outcome in DID_THE_WORK), None
    )


def _keep_earlier_success(trial: TrialStatus, message: str) -> bool:
    """End a trial that cannot go on with the result of its last successful rung."""
    earlier = _last_success(trial)
    if earlier is None:
        return False
    _finish_trial(trial, TrialState.SUCCEEDED, earlier, message)
    return True


def apply_decision(trials: list[TrialStatus], decision: PlannerDecision) -> None:
    """The planner's promotions queued again, its new trials appended (checked first).
    bench/automl plays the operator with this too."""
    by_name = {t.name: t for t in trials}
    for promotion in decision.promotions:
        trial = by_name[promotion.name]
        trial.allowance_gpu_seconds = promotion.allowance_gpu_seconds
        trial.hyperparameters = dict(promotion.hyperparameters)
        trial.state = TrialState.QUEUED
        trial.message = (
            f"promoted: continues from its checkpoint up to "
            f"{hours(promotion.allowance_gpu_seconds)} GPU-hours in all"
        )
    for proposal in decision.new_trials:
        trials.append(
            TrialStatus(
                name=proposal.name,
                model=proposal.model,
                pretrained=proposal.pretrained,
                backbone=proposal.backbone,
                chosen_by=proposal.chosen_by,
                hyperparameters=dict(proposal.hyperparameters),
                gpus=proposal.gpus,
                allowance_gpu_seconds=proposal.allowance_gpu_seconds,
            )
        )


def _abandon(trial: TrialStatus) -> None:
    """A queued or retrying trial the search stopped: it never starts again."""
    if trial.final or (trial.attempts and not trial.attempts[-1].final):
        return
    if not _keep_earlier_success(trial, "not continued: the search stopped"):
        trial.state, trial.message = TrialState.FAILED, "not retried: the search stopped"
        trial.outcome = trial.attempts[-1].outcome if trial.attempts else None


def ask_planner(draft: Draft) -> PlannerDecision:
    world = draft.world
    decision = world.planner.decide(
        PlannerView(
            spec=draft.job.spec,
            dataset=draft.status.validation.dataset,
            trials=tuple(t.model_copy(deep=True) for t in draft.status.trials),
            budget=draft.budget(),
            default_model=world.policy.default_model,
            seed=job_seed(draft.job.ref.uid),
            catalog=tuple(draft.status.validation.backbones),
        )
    )
    check_proposals(
        decision.new_trials, draft.status.trials, draft.job.spec.resources.max_gpus_per_trial
    )
    check_promotions(decision.promotions, draft.status.trials)
    apply_decision(draft.status.trials, decision)
    for trial in draft.status.trials:
        if trial.name in decision.stop_trials:
            trial.attempts = [request_stop(r, StopRequest.EARLY_STOPPED) for r in trial.attempts]
            _abandon(trial)
    return decision


def _finish_trial(trial: TrialStatus, state: TrialState, last: AttemptRecord, message: str) -> None:
    """The trial's metrics are those of the weights it delivers (its last export), so
    the status never shows a number measured on weights nobody can have."""
    trial.state = state
    trial.outcome = last.outcome
    export = delivered(trial)
    trial.metrics = dict(export.metrics) if export else {}
    trial.export_uri = export.export_uri if export else None
    trial.export_digest = export.export_digest if export else None
    trial.message = message


def refresh_trial(draft: Draft, trial: TrialStatus) -> None:
    """The trial's state from its attempts; a retry is recorded when one is due."""
    trial.charged_gpu_seconds = round(sum(r.charged_gpu_seconds for r in trial.attempts), 3)
    trial.waived_gpu_seconds = round(sum(r.waived_gpu_seconds for r in trial.attempts), 3)
    if trial.final:
        return
    last = trial.attempts[-1] if trial.attempts else None
    if last is None:
        if draft.finished:
            trial.state, trial.message = TrialState.SKIPPED, "the job ended before it started"
        else:
            trial.state = TrialState.QUEUED
        return
    if not last.final:
        trial.state = TrialState.RUNNING
        return
    outcome = last.outcome
    if outcome in DID_THE_WORK:
        if trial.state == TrialState.QUEUED:
            return  # promoted: its next attempt is due
        _finish_trial(trial, TrialState.SUCCEEDED, last, last.billing_reason)
        return
    if outcome not in RETRIED:
        message = why_it_ended(last)
        if not _keep_earlier_success(trial, f"its promotion ended early: {message}"):
            _finish_trial(trial, TrialState.FAILED, last, message)
        return
    if draft.finished:
        message = f"the job ended first ({last.billing_reason})"
        if not _keep_earlier_success(trial, message):
            _finish_trial(trial, TrialState.FAILED, last, message)
        return
    retry = decide(
        current_rung(trial.attempts), draft.world.policy, draft.now, waived_attempts(draft.ledger())
    )
    if retry.gave_up:
        if not _keep_earlier_success(trial, retry.gave_up):
            _finish_trial(trial, TrialState.FAILED, last, retry.gave_up)
        return
    if retry.wait_until is not None:
        draft.wake.append(retry.wait_until)
    trial.state = TrialState.QUEUED if retry.now else TrialState.RETRYING


def dataset_failure(draft: Draft) -> None:
    """A dataset or budget outcome in any trial fails the whole job at once."""
    for trial in draft.status.trials:
        last = trial.attempts[-1] if trial.attempts else None
        reason = failure_for(last.outcome if last else None)
        if last is not None and last.final and reason is not None:
            draft.fail(reason, failure_message(draft, last, None, f"trial {trial.name}"))
            return


def start_trials(draft: Draft) -> None:
    """Start queued trials in order while slots and the budget allow."""
    limit = draft.job.spec.resources.max_parallel_trials
    running = sum(1 for t in draft.status.trials if t.state == TrialState.RUNNING)
    for trial in draft.status.trials:
        if running >= limit:
            return
        if trial.state != TrialState.QUEUED:
            continue
        problem = hyperparameter_problem(trial.hyperparameters, f"trial {trial.name}")
        if problem is not None:
            trial.state, trial.message = TrialState.FAILED, problem
            continue
        budget = draft.budget()
        allowance = round(trial.allowance_gpu_seconds - trial.charged_gpu_seconds, 3)
        if allowance <= 0 or allowance > available(budget) + EPSILON:
            if budget.reserved_gpu_seconds > 0 and allowance > 0:
                return  # a running attempt may still free its reservation
            message = (
                f"budget exhausted: needs {hours(max(allowance, 0))} GPU-hours, "
                f"{hours(available(budget))} left"
            )
            if not _keep_earlier_success(trial, f"not continued: {message}"):
                trial.state, trial.message = TrialState.SKIPPED, message
            continue
        trial.attempts.append(
            draft.new_record(trial.name, len(trial.attempts) + 1, trial.gpus, allowance)
        )
        trial.state = TrialState.RUNNING
        draft.status.training_start_time = draft.status.training_start_time or draft.now
        running += 1


def advance_trials(draft: Draft) -> PlannerDecision | None:
    """Trial states from their attempts; while the job runs, new trials and starts."""
    for trial in draft.status.trials:
        refresh_trial(draft, trial)  # the planner decides on what the attempts say now
    decision = None if draft.finished else ask_planner(draft)
    for trial in draft.status.trials:
        refresh_trial(draft, trial)
    if decision is None:
        return None  # an ended job only settles what still runs
    dataset_failure(draft)
    if not draft.finished:
        start_trials(draft)
    for trial in draft.status.trials:
        refresh_trial(draft, trial)  # the job may have ended just now
    return decision
