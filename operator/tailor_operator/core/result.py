"""Which trial is the job's result, and how the job ends.

"Which trial is the job's result?" is answered here and only here. A trial can be
the result only if one of its attempts reported an export the trainer wrote (its URI
and the sha256 of its weights): interim metrics of a trial the search stopped, or a
trial killed at its allowance before it could export, never make a model. Among
those, the best by the primary metric, in its own direction (tailor_contract.metrics).
A job whose trials delivered nothing fails, saying what it was charged.
"""

from tailor_contract import PRIMARY_METRIC
from tailor_contract.cost import split_images
from tailor_contract.metrics import Selection, direction
from tailor_operator.core.draft import Draft
from tailor_operator.core.ledger import hours
from tailor_operator.core.retries import RETRIED
from tailor_operator.core.search.references import reference_floor
from tailor_operator.core.search.stopping import is_perfect
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


def delivered(trial: TrialStatus) -> AttemptRecord | None:
    """The trial's last attempt whose trainer reported writing an export, if any."""
    return next(
        (r for r in reversed(trial.attempts) if r.final and r.export_uri and r.export_digest),
        None,
    )


def eligible(trials: list[TrialStatus]) -> list[TrialStatus]:
    """Succeeded trials whose status holds an export the trainer wrote."""
    return [
        t for t in trials if t.state == TrialState.SUCCEEDED and t.export_uri and t.export_digest
    ]


def primary_metric(draft: Draft) -> str:
    named = draft.job.spec.search.primary_metric
    if named:
        return named
    reported = next((t.primary_metric for t in draft.status.trials if t.primary_metric), None)
    return reported or PRIMARY_METRIC.get(draft.job.spec.task, "")


def best_trial(draft: Draft, candidates: list[TrialStatus]) -> TrialStatus:
    """The best of `candidates` by the primary metric in its known direction, a
    difference the evaluation split cannot resolve going to the lower log loss
    (tailor_contract.metrics.Selection); the first one when none is scored (or the
    direction is unknown)."""
    task, metric = draft.job.spec.task, primary_metric(draft)
    scored = [t for t in candidates if metric in t.metrics]
    if not scored or direction(task, metric) is None:
        return candidates[0]
    return scored[selection(draft, metric).best([t.metrics for t in scored])]


def selection(draft: Draft, metric: str) -> Selection:
    """The job's rule for the best: its task, metric and evaluation split's size."""
    dataset = draft.status.validation.dataset
    held = split_images(dataset.facts())[1] if dataset is not None else None
    return Selection.of(draft.job.spec.task, metric, held)


def _succeed(draft: Draft, candidates: list[TrialStatus], stop: StopReason) -> None:
    status = draft.status
    best = best_trial(draft, candidates)
    metric = primary_metric(draft)
    value = best.metrics.get(metric)
    status.best_trial = BestTrial(
        name=best.name,
        model=best.model,
        metric=metric,
        value=value,
        summary=f"{metric}={value:.4g}" if value is not None else f"{best.name} (no {metric})",
    )
    assert best.export_uri is not None  # eligible() checked it
    status.model = ModelStatus(
        uri=best.export_uri, digest=best.export_digest, metrics=dict(best.metrics)
    )
    skipped = any(t.state == TrialState.SKIPPED for t in status.trials)
    status.stop_reason = StopReason.BUDGET_EXHAUSTED if skipped else stop
    status.phase = JobPhase.SUCCEEDED
    status.reason = status.stop_reason.value
    status.message = f"best trial {best.name} ({best.model}): {status.best_trial.summary}"
    status.message += _below_references(draft, metric, value)
    status.completion_time = draft.now


def _below_references(draft: Draft, metric: str, value: float | None) -> str:
    """What the job's message adds when its model is no better than what needs little
    or no learning (the majority class, the pixel reference): the user should know."""
    dataset = draft.status.validation.dataset
    if value is None or dataset is None:
        return ""
    facts = dataset.facts()
    floor = reference_floor(facts, draft.job.spec.task, metric)
    if floor is None or direction(draft.job.spec.task, metric) != "Maximize" or value > floor:
        return ""
    if draft.job.spec.task == "detection":
        reference = f"detecting nothing ({floor:.4g})"
    elif floor == facts.pixel_reference:
        reference = f"a logistic regression on 16x16 thumbnails of the images ({floor:.4g})"
    else:
        reference = f"always answering the most common class ({floor:.4g})"
    if is_perfect(value, 1.0):
        # Both perfect: the split cannot tell them apart, which says nothing against the model.
        images = split_images(facts)[1]
        return (
            f"; {reference} is perfect on the evaluation split too: its {images} images are "
            f"too few to tell them apart, a larger evaluation split would say how good it is"
        )
    return (
        f"; no better than {reference} on the evaluation split: more labelled images, or a "
        f"catalogued backbone that suits them, would help"
    )


def _details(trials: list[TrialStatus]) -> str:
    return "; ".join(f"{t.name}: {t.message}" for t in trials[:3])


def conclude(draft: Draft, done: StopReason | None) -> None:
    """End the job once the planner is done and every trial is final."""
    trials = draft.status.trials
    if draft.finished or done is None or not trials or not all(t.final for t in trials):
        return
    candidates = eligible(trials)
    if candidates:
        _succeed(draft, candidates, done)
        return
    tried = [t for t in trials if t.attempts]
    charged = hours(draft.budget().charged_gpu_seconds)
    if not tried:
        draft.fail(
            FailureReason.BUDGET_NOT_ENOUGH,
            "the budget could not pay for any trial: " + "; ".join(t.message for t in trials[:3]),
        )
    elif all(t.outcome == Outcome.DIVERGED for t in tried):
        draft.fail(
            FailureReason.TRAINING_DIVERGED,
            f"every trial diverged ({len(tried)}): check the learning rate and the labels; "
            f"{charged} GPU-hours charged",
        )
    elif all(t.outcome in RETRIED for t in tried):
        draft.fail(
            FailureReason.UNKNOWN,
            f"no trial succeeded, for reasons outside the job; {charged} GPU-hours charged. "
            + _details(tried),
        )
    else:
        draft.fail(
            FailureReason.NO_MODEL_EXPORTED,
            f"no trial wrote an exported model; {charged} GPU-hours charged. "
            + _refused(tried)
            + _details(tried),
        )


def _refused(tried: list[TrialStatus]) -> str:
    """Trials whose trained model the export check refused: the product's fault, said so."""
    names = [t.name for t in tried if t.outcome == Outcome.EXPORT_REFUSED]
    if not names:
        return ""
    return (
        f"The export check refused the trained model of {', '.join(names)} (a fault of "
        f"Tailor's exporter, not of the data; waived, not charged): the trial's log shows "
        f"why. "
    )
