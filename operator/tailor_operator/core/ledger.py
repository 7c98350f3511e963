"""The GPU-second ledger: why an attempt ended, what it is charged, and the totals.

"Why was this attempt charged?" is answered here and only here: `classify` names the
outcome, `CHARGED` says which outcomes the user pays for, `WHY` says it in words.
Whether an attempt is retried is core/retries.py's question.

An attempt is settled once, from the pod's final observation, and never changes
afterwards. Totals are recomputed from the attempt records on every
reconciliation, never accumulated, so a replayed or reordered observation
cannot charge anything twice.
"""

from collections.abc import Iterable
from datetime import datetime

from tailor_contract import ExitCode, describe_exit
from tailor_operator.core.observe import ContainerEnd
from tailor_operator.core.status import (
    AttemptPhase,
    AttemptRecord,
    Billing,
    BudgetStatus,
    Outcome,
    StopRequest,
)
from tailor_operator.core.timeutil import seconds_between

SECONDS_PER_HOUR = 3600.0

# The user pays for work done on their behalf and for what they did themselves.
CHARGED = frozenset(
    {
        Outcome.COMPLETED,
        Outcome.STOPPED_AT_ALLOWANCE,
        Outcome.EARLY_STOPPED,
        Outcome.CANCELLED,
        Outcome.DIVERGED,
        Outcome.DELETED,
        Outcome.OOM_KILLED_USER_CONFIG,
    }
)
# Attempts that did the work they were given: their metrics say how the configuration
# did (the search ranks by them; core/result.py decides which one is delivered).
DID_THE_WORK = frozenset({Outcome.COMPLETED, Outcome.STOPPED_AT_ALLOWANCE, Outcome.EARLY_STOPPED})

_EXIT_OUTCOMES = {
    ExitCode.DATASET_CORRUPT: Outcome.DATASET_CORRUPT,
    ExitCode.DATASET_NOT_FOUND: Outcome.DATASET_NOT_FOUND,
    ExitCode.BUDGET_NOT_ENOUGH: Outcome.BUDGET_NOT_ENOUGH,
    ExitCode.DIVERGED: Outcome.DIVERGED,
    ExitCode.INVALID_CONFIG: Outcome.INVALID_CONFIG,
    ExitCode.EXPORT_REFUSED: Outcome.EXPORT_REFUSED,
}
# The outcomes the trainer's own exit code decides: its words are the explanation.
TRAINER_DECIDED = frozenset(_EXIT_OUTCOMES.values())
_STOP_OUTCOMES = {
    StopRequest.ALLOWANCE_EXCEEDED: Outcome.STOPPED_AT_ALLOWANCE,
    StopRequest.EARLY_STOPPED: Outcome.EARLY_STOPPED,
    StopRequest.CANCELLED: Outcome.CANCELLED,
    StopRequest.IMAGE_PULL_FAILED: Outcome.IMAGE_PULL_FAILED,
    StopRequest.NODE_LOST: Outcome.NODE_LOST,
}
# Reasons of the pod condition DisruptionTarget (Kubernetes >= 1.26).
_DISRUPTIONS = {
    "EvictionByEvictionAPI": Outcome.EVICTED,
    "TerminationByKubelet": Outcome.EVICTED,
    "PreemptionByScheduler": Outcome.PREEMPTED,
    "PreemptionByKubeScheduler": Outcome.PREEMPTED,
    "DeletionByTaintManager": Outcome.NODE_LOST,
    "DeletionByPodGC": Outcome.NODE_LOST,
}

WHY = {
    Outcome.COMPLETED: "charged: completed the work it was given",
    Outcome.STOPPED_AT_ALLOWANCE: "charged: ran to its allowance and was stopped by the operator",
    Outcome.EARLY_STOPPED: "charged: stopped early by the search",
    Outcome.CANCELLED: "charged: stopped because the job ended",
    Outcome.DIVERGED: "charged: training diverged (a search outcome)",
    Outcome.DELETED: (
        "charged: its pod was deleted by a person or a controller, not the infrastructure "
        "(no DisruptionTarget condition); the trial ends"
    ),
    Outcome.OOM_KILLED_USER_CONFIG: (
        "charged: out of memory with the configuration the job's spec chose; "
        "try a smaller batch_size, input_size or model"
    ),
    Outcome.INVALID_CONFIG: "waived: the trainer refused the job's configuration",
    Outcome.EXPORT_REFUSED: (
        "waived: the trained model failed the export's own check, the system's fault and "
        "not the job's; the trial ends without a model (the same weights would be refused "
        "again, so it is not retried)"
    ),
    Outcome.DATASET_NOT_FOUND: "waived: the dataset could not be read",
    Outcome.DATASET_CORRUPT: "waived: the dataset is invalid",
    Outcome.BUDGET_NOT_ENOUGH: "waived: the budget cannot pay for a useful search",
    Outcome.EVICTED: "waived: evicted by the infrastructure",
    Outcome.PREEMPTED: "waived: preempted by a higher-priority pod",
    Outcome.NODE_LOST: "waived: its node was lost",
    Outcome.IMAGE_PULL_FAILED: "waived: the trainer image could not be pulled",
    Outcome.OOM_KILLED: "waived: out-of-memory kill of a configuration the system chose",
    Outcome.RETRYABLE: "waived: the trainer reported a transient fault",
    Outcome.CRASHED: "waived: crashed with no user cause",
    Outcome.LOST: "waived: its pod disappeared before it could be recorded",
}


def classify(
    end: ContainerEnd | None,
    stop: StopRequest | None,
    disruption: str | None,
    deleted: bool,
    user_config: bool = False,
) -> tuple[Outcome, str]:
    """The outcome of a finished attempt and a detail for the record.

    What the trainer said about its own work (success, the permanent codes) wins;
    then what the operator asked for; then what the infrastructure did (a
    DisruptionTarget condition); a deletion without one was a person's or a
    controller's. `user_config`: the job's spec chose the configuration, so an
    out-of-memory kill is the user's to fix.
    """
    code = end.exit_code if end else None
    if code == ExitCode.SUCCESS:
        return Outcome.COMPLETED, "exit 0"
    if code is not None and code in _EXIT_OUTCOMES:
        return _EXIT_OUTCOMES[ExitCode(code)], f"exit {code} ({describe_exit(code)})"
    if stop is not None:
        return _STOP_OUTCOMES[stop], f"stopped by the operator: {stop.value}"
    if disruption is not None:
        return _DISRUPTIONS.get(disruption, Outcome.EVICTED), f"DisruptionTarget: {disruption}"
    if deleted:
        return Outcome.DELETED, "pod deleted"
    if end is None:
        return Outcome.CRASHED, "pod failed without a container exit"
    if code == ExitCode.RETRYABLE:
        return Outcome.RETRYABLE, f"exit {code} (RETRYABLE)"
    if end.reason == "OOMKilled":
        chosen = Outcome.OOM_KILLED_USER_CONFIG if user_config else Outcome.OOM_KILLED
        return chosen, f"exit {code} (OOMKilled)"
    return Outcome.CRASHED, f"exit {code} ({describe_exit(end.exit_code)})"


def why_it_ended(record: AttemptRecord) -> str:
    """What a user reads about the attempt that ended a trial. The trainer's own words
    when its exit code decided the outcome; otherwise the ledger's reason first (an
    out-of-memory kill, a deletion: what the trainer cannot know), then what the
    trainer last said."""
    if record.outcome in TRAINER_DECIDED and record.message:
        return record.message
    if record.message:
        return f"{record.billing_reason}; {record.message}"
    return record.billing_reason


def _round(value: float) -> float:
    return round(value, 3)


def settle(
    record: AttemptRecord,
    outcome: Outcome,
    detail: str,
    *,
    started: datetime | None,
    finished: datetime,
    exit_code: int | None,
    metrics: dict[str, float] | None = None,
    message: str = "",
) -> AttemptRecord:
    """The final ledger line: GPU-seconds of the run, charged or waived, and why.

    Charged time is container start to termination times GPUs times the factor,
    capped at the attempt's allowance; time holding GPUs before the container
    started (image pull) and every second of a waived attempt are waived.
    """
    factor = record.calibration_factor or 0.0
    run = seconds_between(started, finished) * record.gpus * factor
    held_from = record.scheduled_at
    held = seconds_between(held_from, started or finished) * record.gpus * factor
    if outcome in CHARGED:
        charged = min(run, record.allowance_gpu_seconds)
        billing = Billing.CHARGED
    else:
        charged = 0.0
        billing = Billing.WAIVED
    return record.model_copy(
        update={
            "phase": AttemptPhase.FINISHED,
            "started_at": started,
            "finished_at": finished,
            "exit_code": exit_code,
            "outcome": outcome,
            "billing": billing,
            "billing_reason": f"{WHY[outcome]} ({detail})",
            "gpu_seconds": _round(run),
            "charged_gpu_seconds": _round(charged),
            "waived_gpu_seconds": _round(run - charged + held),
            "metrics": metrics or {},
            "message": message[:1024],
        }
    )


def unique_records(records: Iterable[AttemptRecord]) -> list[AttemptRecord]:
    """One record per pod; a final record wins over an unfinished copy of itself."""
    chosen: dict[str, AttemptRecord] = {}
    for record in records:
        seen = chosen.get(record.pod)
        if seen is None or (record.final and not seen.final):
            chosen[record.pod] = record
    return list(chosen.values())


def hours(seconds: float) -> str:
    return f"{seconds / SECONDS_PER_HOUR:.2f}"


def totals(limit_gpu_seconds: float, records: Iterable[AttemptRecord]) -> BudgetStatus:
    """status.budget recomputed from scratch; charged never exceeds the limit."""
    charged_sum = waived = reserved = 0.0
    for record in unique_records(records):
        if record.final:
            charged_sum += record.charged_gpu_seconds
            waived += record.waived_gpu_seconds
        elif record.gpus > 0:
            reserved += record.allowance_gpu_seconds
    charged = min(charged_sum, limit_gpu_seconds)
    # Anything above the limit is recorded as waived: the user never pays it.
    waived += charged_sum - charged
    return BudgetStatus(
        limit_gpu_seconds=_round(limit_gpu_seconds),
        charged_gpu_seconds=_round(charged),
        waived_gpu_seconds=_round(waived),
        reserved_gpu_seconds=_round(reserved),
        summary=f"{hours(charged)}/{hours(limit_gpu_seconds)}",
    )


def available(budget: BudgetStatus) -> float:
    """What a new reservation may take: the limit less charged and reserved."""
    return max(
        0.0, budget.limit_gpu_seconds - budget.charged_gpu_seconds - budget.reserved_gpu_seconds
    )
