"""Pod status as a kubelet reports it: pure builders of the status the agent writes.

The agent writes with a strategic merge patch, where conditions merge by type, so
conditions set by others (PodScheduled by the scheduler, DisruptionTarget by the
API server) stay as they are.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tailor_devcluster.nodeagent.env import POD_IP

TERMINATION_MESSAGE_LIMIT = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
IMAGE_ID = "tailor-node-agent://local-process"


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, to the second, as metav1.Time serialises."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Exit:
    code: int
    reason: str


def exit_of(returncode: int) -> Exit:
    """What a container runtime reports: 128 + N for a process killed by signal N."""
    if returncode < 0:
        return Exit(128 - returncode, "Error")
    return Exit(returncode, "Completed" if returncode == 0 else "Error")


def termination_message(written: str, log_text: str, policy: str | None, exit_code: int) -> str:
    """What the process wrote to its termination file (capped at 4096 bytes); with
    FallbackToLogsOnError and a failure, the tail of its log when it wrote nothing."""
    message = written.encode()[:TERMINATION_MESSAGE_LIMIT].decode(errors="ignore")
    if message.strip() or policy != "FallbackToLogsOnError" or exit_code == 0:
        return message
    tail = "\n".join(log_text.splitlines()[-FALLBACK_LOG_LINES:])
    return tail.encode()[-FALLBACK_LOG_BYTES:].decode(errors="ignore")


def _container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return containers[0]  # type: ignore[no-any-return]


def _condition(kind: str, status: bool, now: str, reason: str | None = None) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": kind,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    if reason:
        condition["reason"] = reason
    return condition


def _container_status(
    pod: Mapping[str, Any], state: dict[str, Any], ready: bool, container_id: str | None
) -> dict[str, Any]:
    container = _container(pod)
    status: dict[str, Any] = {
        "name": container.get("name", ""),
        "image": container.get("image", ""),
        "imageID": IMAGE_ID if container_id else "",
        "state": state,
        "lastState": {},
        "ready": ready,
        "started": "running" in state,
        "restartCount": 0,
    }
    if container_id:
        status["containerID"] = container_id
    return status


def _base(pod: Mapping[str, Any], phase: str, started: datetime | None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "hostIP": POD_IP, "hostIPs": [{"ip": POD_IP}]}
    if started is not None:
        status["startTime"] = timestamp(started)
        status["podIP"] = POD_IP
        status["podIPs"] = [{"ip": POD_IP}]
    return status


def waiting_status(
    pod: Mapping[str, Any], reason: str, message: str, since: datetime
) -> dict[str, Any]:
    """Accepted, not started: a volume or a variable is missing (the agent retries)."""
    now = timestamp(since)
    status = _base(pod, "Pending", since)
    status["conditions"] = [
        _condition("PodReadyToStartContainers", reason != "ContainerCreating", now),
        _condition("Initialized", True, now),
        _condition("ContainersReady", False, now, "ContainersNotReady"),
        _condition("Ready", False, now, "ContainersNotReady"),
    ]
    waiting = {"waiting": {"reason": reason, "message": message}}
    status["containerStatuses"] = [_container_status(pod, waiting, False, None)]
    return status


def running_status(pod: Mapping[str, Any], started: datetime, container_id: str) -> dict[str, Any]:
    now = timestamp(started)
    status = _base(pod, "Running", started)
    status["conditions"] = [
        _condition("PodReadyToStartContainers", True, now),
        _condition("Initialized", True, now),
        _condition("ContainersReady", True, now),
        _condition("Ready", True, now),
    ]
    state = {"running": {"startedAt": now}}
    status["containerStatuses"] = [_container_status(pod, state, True, container_id)]
    return status


def terminated_status(
    pod: Mapping[str, Any],
    started: datetime,
    finished: datetime,
    exit: Exit,
    message: str,
    container_id: str,
) -> dict[str, Any]:
    """restartPolicy Never: exit 0 is Succeeded, anything else Failed."""
    end = timestamp(finished)
    status = _base(pod, "Succeeded" if exit.code == 0 else "Failed", started)
    status["conditions"] = [
        _condition("PodReadyToStartContainers", False, end),
        _condition("Initialized", True, timestamp(started)),
        _condition("ContainersReady", False, end, "PodCompleted"),
        _condition("Ready", False, end, "PodCompleted"),
    ]
    terminated: dict[str, Any] = {
        "exitCode": exit.code,
        "reason": exit.reason,
        "startedAt": timestamp(started),
        "finishedAt": end,
        "containerID": container_id,
    }
    if message:
        terminated["message"] = message
    state = {"terminated": terminated}
    status["containerStatuses"] = [_container_status(pod, state, False, container_id)]
    return status


def rejected_status(reason: str, message: str) -> dict[str, Any]:
    """Refused at admission: the pod fails without ever starting."""
    return {"phase": "Failed", "reason": reason, "message": message}


def lost_status(
    pod: Mapping[str, Any], started: datetime | None, now: datetime, container_id: str
) -> dict[str, Any]:
    """A container this agent does not know (it restarted): gone, as the kubelet says."""
    return terminated_status(
        pod,
        started or now,
        now,
        Exit(137, "ContainerStatusUnknown"),
        "The container could not be located when the node agent restarted",
        container_id,
    )
