"""One attempt against its pod: settle it when it ends, stop it when it must end.

Records only move forward (Creating -> Pending -> Running -> Stopping ->
Finished) and a Finished record is never touched again, so observing the same
pod twice, or an older state of it after a newer one, changes nothing.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from tailor_contract import AttemptResult
from tailor_operator.core.calibration import CalibrationTable
from tailor_operator.core.ledger import classify, settle
from tailor_operator.core.observe import IMAGE_PULL_FAILURES, NodeView, PodView
from tailor_operator.core.policy import Policy
from tailor_operator.core.status import AttemptPhase, AttemptRecord, Outcome, StopRequest

_ORDER = list(AttemptPhase)


@dataclass(frozen=True)
class Observed:
    record: AttemptRecord
    result: AttemptResult | None = None  # what the trainer reported, once settled


MESSAGE_CHARS = 512
LOG_TAIL = "its log ended: "


def read_result(message: str) -> AttemptResult | None:
    """The trainer's result from a termination message; None for anything else (logs)."""
    text = message.strip()
    if not text.startswith("{"):
        return None
    try:
        return AttemptResult.model_validate_json(text)
    except ValidationError:
        return None


def _advance(record: AttemptRecord, phase: AttemptPhase) -> AttemptPhase:
    return phase if _ORDER.index(phase) > _ORDER.index(record.phase) else record.phase


def _placed(
    record: AttemptRecord, pod: PodView, nodes: Mapping[str, NodeView], table: CalibrationTable
) -> AttemptRecord:
    """Node, GPU product and factor, fixed the first time the pod is seen on a node."""
    if record.calibration_factor is not None or pod.node is None:
        return record
    node = nodes.get(pod.node)
    product = node.product if node else None
    return record.model_copy(
        update={
            "node": pod.node,
            "gpu_product": product,
            "calibration_factor": table.factor_for(product),
            "calibration_version": table.version,
        }
    )


def _ended(pod: PodView, nodes: Mapping[str, NodeView], policy: Policy, now: datetime) -> bool:
    if pod.terminal:
        return True
    if pod.deleting_since is None:
        return False
    if pod.started_at is None and pod.end is None:
        return True  # nothing ran: no kubelet report is worth waiting for
    node = nodes.get(pod.node) if pod.node else None
    if node is None or not node.ready:
        return True  # no kubelet will report on a lost node
    deadline = pod.deletion_deadline or pod.deleting_since
    return now - deadline >= timedelta(seconds=policy.deletion_timeout_seconds)


def _settle_from_pod(
    record: AttemptRecord, pod: PodView, now: datetime, user_config: bool
) -> Observed:
    end = pod.end
    deleted = pod.deleting_since is not None and record.stop_requested is None
    outcome, detail = classify(end, record.stop_requested, pod.disruption, deleted, user_config)
    result = read_result(end.message) if end else None
    message = ""
    if result is not None:
        message = result.reason
    elif end is not None and end.message.strip():
        # No result: the kubelet's fallback, the tail of the container's log.
        message = LOG_TAIL + end.message.strip()[len(LOG_TAIL) - MESSAGE_CHARS :]
    # Never in the future: a timestamp from another machine's clock may run ahead.
    finished = min(now, (end.finished_at if end else None) or pod.deleting_since or now)
    started = (end.started_at if end else None) or pod.started_at or record.started_at
    settled = settle(
        record,
        outcome,
        detail,
        started=started,
        finished=finished,
        exit_code=end.exit_code if end else None,
        metrics=dict(result.metrics) if result else {},
        message=message,
    )
    if result is not None and result.export_uri and result.export_digest:
        settled = settled.model_copy(
            update={"export_uri": result.export_uri, "export_digest": result.export_digest}
        )
    return Observed(settled, result)


def observe(
    record: AttemptRecord,
    pod: PodView | None,
    nodes: Mapping[str, NodeView],
    table: CalibrationTable,
    policy: Policy,
    now: datetime,
    user_config: bool = False,
) -> Observed:
    """The record brought up to date with its pod (None: the pod does not exist).
    `user_config`: the job's spec chose the attempt's configuration."""
    if record.final:
        return Observed(record)
    if pod is None:
        if record.phase == AttemptPhase.CREATING:
            return Observed(record)  # recorded, not created yet: the plan creates it
        lost = settle(
            record,
            Outcome.LOST,
            "pod missing",
            started=record.started_at,
            finished=now,
            exit_code=None,
        )
        return Observed(lost)
    record = _placed(record, pod, nodes, table)
    phase = AttemptPhase.RUNNING if pod.started_at else AttemptPhase.PENDING
    record = record.model_copy(
        update={
            "phase": _advance(record, phase),
            "scheduled_at": record.scheduled_at or pod.scheduled_at,
            "started_at": record.started_at or pod.started_at,
        }
    )
    if _ended(pod, nodes, policy, now):
        return _settle_from_pod(record, pod, now, user_config)
    return Observed(record)


def allowance_deadline(record: AttemptRecord, policy: Policy) -> datetime | None:
    """When a running attempt has used its allowance plus the grace period."""
    if record.started_at is None or record.gpus <= 0 or not record.calibration_factor:
        return None
    real_seconds = record.allowance_gpu_seconds / (record.gpus * record.calibration_factor)
    return record.started_at + timedelta(seconds=real_seconds + policy.allowance_grace_seconds)


def image_pull_deadline(record: AttemptRecord, pod: PodView, policy: Policy) -> datetime | None:
    if pod.waiting_reason not in IMAGE_PULL_FAILURES:
        return None
    since = pod.scheduled_at or pod.created_at or record.created_at
    return since + timedelta(seconds=policy.image_pull_timeout_seconds)


def needed_stop(
    record: AttemptRecord,
    pod: PodView | None,
    nodes: Mapping[str, NodeView],
    policy: Policy,
    now: datetime,
) -> tuple[StopRequest | None, datetime | None]:
    """Whether the operator must stop this attempt now, else when to look again."""
    if record.final or record.stop_requested is not None or pod is None:
        return None, None
    if pod.node is not None and pod.node not in nodes and pod.deleting_since is None:
        return StopRequest.NODE_LOST, None
    wake: datetime | None = None
    for reason, deadline in (
        (StopRequest.ALLOWANCE_EXCEEDED, allowance_deadline(record, policy)),
        (StopRequest.IMAGE_PULL_FAILED, image_pull_deadline(record, pod, policy)),
    ):
        if deadline is None:
            continue
        if now >= deadline:
            return reason, None
        wake = deadline if wake is None else min(wake, deadline)
    return None, wake


def request_stop(record: AttemptRecord, reason: StopRequest) -> AttemptRecord:
    """Mark the attempt as being stopped by the operator (written before the delete)."""
    if record.final or record.stop_requested is not None:
        return record
    return record.model_copy(update={"stop_requested": reason, "phase": AttemptPhase.STOPPING})
