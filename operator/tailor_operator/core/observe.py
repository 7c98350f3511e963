"""What the operator reads from its pods and their nodes, as small typed views.

Pods arrive as the API server's JSON (camelCase dicts); parsing them here keeps
every rule about container states in one pure, tested place.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tailor_contract.nodes import GPU_PRODUCT_LABEL
from tailor_operator.core.timeutil import parse_time

LABEL_JOB = "tailor.dev/job"
LABEL_TRIAL = "tailor.dev/trial"
LABEL_ATTEMPT = "tailor.dev/attempt"
LABEL_ROLE = "tailor.dev/role"
LEDGER_FINALIZER = "tailor.dev/ledger"
TRAINER_CONTAINER = "trainer"

IMAGE_PULL_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
# Waiting reasons that need a person (a missing Secret or key), not a retry.
CONFIG_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError"})


@dataclass(frozen=True)
class ContainerEnd:
    exit_code: int
    reason: str
    message: str
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class PodView:
    name: str
    owner_uid: str | None
    trial: str | None
    attempt: int | None
    phase: str
    node: str | None
    created_at: datetime | None
    scheduled_at: datetime | None
    started_at: datetime | None
    end: ContainerEnd | None
    waiting_reason: str | None
    waiting_message: str
    unschedulable_message: str
    disruption: str | None
    # When deletion was asked for; deletionTimestamp itself is the end of the grace period.
    deleting_since: datetime | None
    deletion_deadline: datetime | None
    has_finalizer: bool

    @property
    def terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


@dataclass(frozen=True)
class NodeView:
    product: str | None
    ready: bool


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None


def _container(status: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = status.get("containerStatuses") or []
    for item in statuses:
        if item.get("name") == TRAINER_CONTAINER:
            return item  # type: ignore[no-any-return]
    return statuses[0] if statuses else {}


def _end(state: Mapping[str, Any]) -> ContainerEnd | None:
    terminated = state.get("terminated")
    if not terminated:
        return None
    return ContainerEnd(
        exit_code=int(terminated.get("exitCode", -1)),
        reason=str(terminated.get("reason") or ""),
        message=str(terminated.get("message") or ""),
        started_at=parse_time(terminated.get("startedAt")),
        finished_at=parse_time(terminated.get("finishedAt")),
    )


def _int_label(labels: Mapping[str, str], key: str) -> int | None:
    try:
        return int(labels[key])
    except (KeyError, ValueError):
        return None


def parse_pod(raw: Mapping[str, Any]) -> PodView:
    metadata = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    labels = metadata.get("labels") or {}
    owner_uid = next(
        (o.get("uid") for o in metadata.get("ownerReferences") or [] if o.get("controller")), None
    )
    container = _container(status)
    state = container.get("state") or {}
    end = _end(state)
    running = state.get("running") or {}
    waiting = state.get("waiting") or {}
    scheduled = _condition(status, "PodScheduled")
    disruption = _condition(status, "DisruptionTarget")
    started_at = parse_time(running.get("startedAt")) or (end.started_at if end else None)
    deadline = parse_time(metadata.get("deletionTimestamp"))
    grace = timedelta(seconds=int(metadata.get("deletionGracePeriodSeconds") or 0))
    return PodView(
        name=str(metadata.get("name", "")),
        owner_uid=owner_uid,
        trial=labels.get(LABEL_TRIAL),
        attempt=_int_label(labels, LABEL_ATTEMPT),
        phase=str(status.get("phase") or "Pending"),
        node=spec.get("nodeName") or None,
        created_at=parse_time(metadata.get("creationTimestamp")),
        scheduled_at=(
            parse_time(scheduled.get("lastTransitionTime"))
            if scheduled and scheduled.get("status") == "True"
            else None
        ),
        started_at=started_at,
        end=end,
        waiting_reason=waiting.get("reason"),
        waiting_message=str(waiting.get("message") or ""),
        unschedulable_message=(
            str(scheduled.get("message") or "")
            if scheduled and scheduled.get("status") == "False"
            else ""
        ),
        disruption=(
            str(disruption.get("reason") or "DisruptionTarget")
            if disruption and disruption.get("status") == "True"
            else None
        ),
        deleting_since=deadline - grace if deadline else None,
        deletion_deadline=deadline,
        has_finalizer=LEDGER_FINALIZER in (metadata.get("finalizers") or []),
    )


def parse_node(raw: Mapping[str, Any]) -> NodeView:
    labels = (raw.get("metadata") or {}).get("labels") or {}
    ready = _condition(raw.get("status") or {}, "Ready")
    return NodeView(
        product=labels.get(GPU_PRODUCT_LABEL),
        ready=bool(ready and ready.get("status") == "True"),
    )
