"""Thin kopf handlers: every change to a TrainingJob or one of its pods puts the job
on the work queue; the reconciler does the rest.

No handler here changes anything itself and kopf keeps no state on the objects
(no change handlers, no finalizer of its own): a TrainingJob is deletable even
while the operator is down.
"""

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from tailor_operator.core.models import GROUP, KIND, PLURAL, VERSION
from tailor_operator.core.observe import LABEL_JOB
from tailor_operator.metrics import Metrics
from tailor_operator.reconciler import Key, OwnWrites
from tailor_operator.workqueue import WorkQueue


@dataclass
class Runtime:
    queue: WorkQueue[Key]
    metrics: Metrics
    own_writes: OwnWrites


_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _runtime
    _runtime = runtime


def _current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("tailor_operator.handlers.install() was not called before kopf started")
    return _runtime


def owner_job(body: Mapping[str, Any]) -> str | None:
    """The TrainingJob that owns a pod: its controller reference, else its job label."""
    metadata = body.get("metadata") or {}
    for owner in metadata.get("ownerReferences") or []:
        if owner.get("kind") == KIND and owner.get("controller"):
            return str(owner.get("name"))
    label = (metadata.get("labels") or {}).get(LABEL_JOB)
    return str(label) if label else None


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Handler failures are logged by the operator itself; Events are kept for users.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    memo["queue_task"] = asyncio.create_task(_current().queue.run())


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("queue_task")
    if isinstance(task, asyncio.Task):
        task.cancel()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def trainingjob_changed(
    event: Mapping[str, Any], body: kopf.Body, namespace: str | None, name: str | None, **_: Any
) -> None:
    if namespace is None or name is None:
        return
    runtime = _current()
    if event.get("type") == "DELETED":
        runtime.metrics.forget(namespace, name)
    elif runtime.own_writes.is_own((namespace, name), body.metadata.get("resourceVersion")):
        return  # the echo of this operator's own status write
    runtime.queue.add((namespace, name))


@kopf.on.event("v1", "pods", labels={LABEL_JOB: kopf.PRESENT})
async def pod_changed(body: kopf.Body, namespace: str | None, **_: Any) -> None:
    job = owner_job(body)
    if namespace is not None and job is not None:
        _current().queue.add((namespace, job))
