"""The CPU-only validation that comes before any GPU: dataset checks, feasibility."""

from tailor_contract import AttemptResult
from tailor_operator.core.catalog import for_task, verified_entries
from tailor_operator.core.draft import Draft
from tailor_operator.core.ledger import hours
from tailor_operator.core.retries import ENDS_THE_JOB, decide, waived_attempts
from tailor_operator.core.status import (
    AttemptRecord,
    DatasetSummary,
    FailureReason,
    Outcome,
)


def failure_for(outcome: Outcome | None) -> FailureReason | None:
    """The job's failure reason for an outcome no attempt can fix (never retried)."""
    return ENDS_THE_JOB.get(outcome) if outcome else None


def failure_message(
    draft: Draft, record: AttemptRecord, result: AttemptResult | None, where: str
) -> str:
    said = (result.reason if result else "") or record.message
    if record.outcome == Outcome.DATASET_CORRUPT:
        problems = (result.problems if result else []) or ([said] if said else [])
        return f"{where}: the dataset is invalid; first problems: " + "; ".join(problems[:5])
    if record.outcome == Outcome.BUDGET_NOT_ENOUGH:
        estimate = result.estimated_min_gpu_seconds if result else None
        minimum = f"{hours(estimate)} GPU-hours" if estimate is not None else "unknown"
        return (
            f"{where}: the budget of {draft.job.spec.budget.gpu_hours} GPU-hours is below the "
            f"estimated minimum ({minimum}) for a useful search. {said}".rstrip()
        )
    if record.outcome == Outcome.INVALID_CONFIG:
        return f"{where}: {said or 'the trainer refused the configuration'}"
    return f"{where}: the annotation file could not be read: {said or 'no detail'}"


def record_validation_result(
    draft: Draft, record: AttemptRecord, result: AttemptResult | None
) -> None:
    """Keep what a settled validation attempt reported (its pod may go away)."""
    validation = draft.status.validation
    if result is None:
        return
    if result.dataset is not None:
        validation.dataset = DatasetSummary.of(result.dataset)
    if result.problems:
        validation.problems = list(result.problems[:20])
    if result.estimated_min_gpu_seconds is not None:
        validation.estimated_min_gpu_seconds = result.estimated_min_gpu_seconds
    offered = for_task(draft.world.catalog, draft.job.spec.task)
    validation.backbones = verified_entries(offered, result.verified_backbones)
    validation.unusable_backbones = dict(result.unusable_backbones)
    if failure_for(record.outcome):
        validation.message = failure_message(draft, record, result, "validation")


def budget_shortfall(draft: Draft) -> str | None:
    """Why the budget cannot pay for the planner's cheapest useful search, if it cannot.

    The trainer's validation checks the same estimate (tailor_contract.cost); the
    operator checks again with what it knows and the trainer does not (spec.search)."""
    validation = draft.status.validation
    if validation.dataset is None:
        return None
    world = draft.world
    catalog = validation.backbones
    minimum = world.planner.minimum_gpu_seconds(
        draft.job.spec, validation.dataset, world.policy.default_model, catalog
    )
    if minimum is None or draft.limit >= minimum:
        return None
    validation.estimated_min_gpu_seconds = minimum
    model = world.planner.first_model(draft.job.spec, world.policy.default_model, catalog)
    first = "a short fine-tuning" if draft.job.spec.task == "detection" else "one linear probe"
    what = (
        f"{first} of {model}, the cheapest catalogued backbone"
        if catalog
        else f"a few short trials of {model}, the cheapest backbone it may use"
    )
    return (
        f"validation: the budget of {draft.job.spec.budget.gpu_hours} GPU-hours is below the "
        f"estimated minimum ({hours(minimum)} GPU-hours) for a useful search: {what}"
    )


def advance_validation(draft: Draft) -> None:
    validation = draft.status.validation
    if validation.state in ("Succeeded", "Failed") or draft.finished:
        return
    attempts = validation.attempts
    last = attempts[-1] if attempts else None
    if last is None:
        attempts.append(draft.new_record("validate", 1, gpus=0, allowance=draft.limit))
        validation.state = "Running"
        return
    if not last.final:
        validation.state = "Running"
        return
    if last.outcome == Outcome.COMPLETED:
        shortfall = budget_shortfall(draft)
        if shortfall is not None:
            validation.state, validation.message = "Failed", shortfall
            draft.fail(FailureReason.BUDGET_NOT_ENOUGH, shortfall)
            return
        validation.state = "Succeeded"
        return
    failure = failure_for(last.outcome)
    if failure is not None:
        validation.state = "Failed"
        draft.fail(failure, validation.message or failure_message(draft, last, None, "validation"))
        return
    retry = decide(attempts, draft.world.policy, draft.now, waived_attempts(draft.ledger()))
    if retry.now:
        attempts.append(
            draft.new_record("validate", len(attempts) + 1, gpus=0, allowance=draft.limit)
        )
        validation.state = "Running"
    elif retry.gave_up:
        validation.state = "Failed"
        validation.message = f"validation: {retry.gave_up}"
        draft.fail(FailureReason.UNKNOWN, validation.message)
    else:
        if retry.wait_until is not None:
            draft.wake.append(retry.wait_until)
        validation.state = "Retrying"
