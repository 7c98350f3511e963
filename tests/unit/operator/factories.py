"""Builders of the JSON the API server would return: jobs, pods, nodes."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tailor_contract import PretrainedBackbone
from tailor_operator.core.calibration import CalibrationTable
from tailor_operator.core.draft import World
from tailor_operator.core.models import TrainingJob, parse_trainingjob
from tailor_operator.core.observe import (
    LEDGER_FINALIZER,
    NodeView,
    PodView,
    parse_pod,
)
from tailor_operator.core.planner import SimplePlanner, TrialPlanner
from tailor_operator.core.policy import Policy
from tailor_operator.core.timeutil import format_time

GRACE = 30
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
UID = "0b7c6a52-2f0e-4f5e-9c39-5d6f0b1c2d3e"
A100 = "NVIDIA-A100-SXM4-80GB"
H100 = "NVIDIA-H100-80GB-HBM3"
TABLE = CalibrationTable(version="v7", default_factor=1.0, factors={A100: 1.0, H100: 2.0})
POLICY = Policy(
    trainer_image="registry.example/tailor-trainer:1.0",
    max_attempts=3,
    backoff_base_seconds=10,
    backoff_max_seconds=60,
    allowance_grace_seconds=30,
    image_pull_timeout_seconds=60,
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ts(seconds: float) -> str:
    return format_time(at(seconds))


def spec(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "classification",
        "dataset": {"train": "s3://data/insects/train.json", "credentialsSecret": "s3-creds"},
        "budget": {"gpuHours": "1"},
        "output": "s3://models/insects/",
    }
    body.update(overrides)
    return body


def job_json(
    status: dict[str, Any] | None = None,
    name: str = "insects",
    generation: int = 1,
    **spec_overrides: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "tailor.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "uid": UID,
            "generation": generation,
            "resourceVersion": "100",
            "creationTimestamp": ts(0),
        },
        "spec": spec(**spec_overrides),
        "status": status or {},
    }


def job(status: dict[str, Any] | None = None, **spec_overrides: Any) -> TrainingJob:
    return parse_trainingjob(job_json(status, **spec_overrides))


def pod_json(
    name: str,
    *,
    trial: str = "t0",
    attempt: int = 1,
    phase: str = "Pending",
    node: str | None = None,
    started: float | None = None,
    finished: float | None = None,
    exit_code: int | None = None,
    reason: str | None = None,
    message: str | None = None,
    waiting: str | None = None,
    disruption: str | None = None,
    deleting: float | None = None,
    scheduled: float | None = None,
    created: float = 0,
    owner_uid: str = UID,
    finalizer: bool = True,
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if exit_code is not None:
        state["terminated"] = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": ts(started) if started is not None else None,
            "finishedAt": ts(finished) if finished is not None else None,
        }
        if message is not None:
            state["terminated"]["message"] = message
    elif started is not None:
        state["running"] = {"startedAt": ts(started)}
    elif waiting is not None:
        state["waiting"] = {"reason": waiting, "message": f"{waiting} detail"}
    conditions = []
    if scheduled is not None:
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(scheduled)}
        )
    if disruption is not None:
        conditions.append({"type": "DisruptionTarget", "status": "True", "reason": disruption})
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "team-a",
        "creationTimestamp": ts(created),
        "labels": {"tailor.dev/trial": trial, "tailor.dev/attempt": str(attempt)},
        "ownerReferences": [{"uid": owner_uid, "controller": True, "kind": "TrainingJob"}],
        "finalizers": [LEDGER_FINALIZER] if finalizer else [],
    }
    if deleting is not None:
        # As the API server writes it: the end of the grace period, and the period.
        metadata["deletionTimestamp"] = ts(deleting + GRACE)
        metadata["deletionGracePeriodSeconds"] = GRACE
    return {
        "metadata": metadata,
        "spec": {"nodeName": node} if node else {},
        "status": {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": [{"name": "trainer", "state": state}] if state else [],
        },
    }


def pod(name: str, **kwargs: Any) -> PodView:
    return parse_pod(pod_json(name, **kwargs))


NODES = {
    "gpu-a": NodeView(product=A100, ready=True),
    "gpu-h": NodeView(product=H100, ready=True),
    "gpu-x": NodeView(product=None, ready=True),
    "gpu-down": NodeView(product=A100, ready=False),
}


def world(
    pods: list[PodView] | None = None,
    now: float = 0,
    planner: TrialPlanner | None = None,
    policy: Policy = POLICY,
    nodes: dict[str, NodeView] | None = None,
    catalog: tuple[PretrainedBackbone, ...] = (),
) -> World:
    return World(
        pods={p.name: p for p in pods or []},
        nodes=NODES if nodes is None else nodes,
        calibration=TABLE,
        policy=policy,
        planner=planner or SimplePlanner(),
        now=at(now),
        catalog=catalog,
    )
