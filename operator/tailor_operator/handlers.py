"""Thin kopf handlers: every change to a TrainingJob or one of its pods puts the job
on the work queue; the reconciler does the rest.

No handler here changes anything itself and kopf keeps no state on the objects
(no change handlers, no finalizer of its own): a TrainingJob is deletable even
while the operator is down.
"""

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from tailor_operator.core.models import GROUP, KIND, PLURAL, VERSION
from tailor_operator.core.observe import LABEL_JOB, PodView, parse_pod
from tailor_operator.metrics import Metrics
from tailor_operator.reconciler import Key, OwnWrites
from tailor_operator.workqueue import WorkQueue


class PodTriggers:
    """The view of each pod as it last woke its job.

    The plan sees a pod only through `parse_pod`; an event that leaves that view as
    it was (an annotation, the pod IP, a Ready condition) cannot change the plan, so
    it wakes nobody. Every other event does, and so does every event after a restart.
    """

    def __init__(self) -> None:
        self._views: dict[tuple[str, str], PodView] = {}

    def wakes(self, namespace: str, body: Mapping[str, Any], deleted: bool = False) -> bool:
        key = (namespace, str((body.get("metadata") or {}).get("name")))
        if deleted:
            self._views.pop(key, None)
            return True
        try:
            view = parse_pod(body)
        except (TypeError, ValueError):
            self._views.pop(key, None)
            return True  # the reconciler will say what is wrong with it
        if self._views.get(key) == view:
            return False
        self._views[key] = view
        return True


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf builds a diff-base for every event, a deep copy of the whole object, even
    with only event handlers, which never see a diff: at scale that copying was a
    quarter of the operator's CPU. This storage builds and keeps nothing."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@dataclass
class Runtime:
    queue: WorkQueue[Key]
    metrics: Metrics
    own_writes: OwnWrites
    pod_triggers: PodTriggers = field(default_factory=PodTriggers)


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
    settings.persistence.diffbase_storage = NoDiffBase()
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
async def pod_changed(
    event: Mapping[str, Any], body: kopf.Body, namespace: str | None, **_: Any
) -> None:
    job = owner_job(body)
    if namespace is None or job is None:
        return
    runtime = _current()
    if runtime.pod_triggers.wakes(namespace, body, deleted=event.get("type") == "DELETED"):
        runtime.queue.add((namespace, job))
