"""Gather, plan, apply, record: one TrainingJob at a time.

Order matters for the ledger: the status (with new reservations and settled
lines) is written first, guarded by the resourceVersion the plan was made
from; only then are pods created, deleted and released. A conflict means
someone else wrote in between: nothing is applied and the job is planned again.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from tailor_operator.core.adoption import releasable_orphans
from tailor_operator.core.conditions import Situation, job_conditions
from tailor_operator.core.draft import World
from tailor_operator.core.events import Event
from tailor_operator.core.models import InvalidObject, parse_trainingjob
from tailor_operator.core.observe import parse_pod
from tailor_operator.core.plan import plan
from tailor_operator.core.planner import TrialPlanner
from tailor_operator.core.planners import planner_named
from tailor_operator.core.status import Condition, JobPhase
from tailor_operator.kube import CreateRefused, Kube, StatusConflict
from tailor_operator.metrics import Metrics
from tailor_operator.settings import Settings

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
CONFLICT_RETRY_SECONDS = 0.0
CREATE_RETRY_SECONDS = 30.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class OwnWrites:
    """The resourceVersion of each job's status as this process last wrote it.

    The watch echoes every write back; planning again from an object the plan
    itself produced learns nothing, so the handler skips that one event.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[Key, str] = {}

    def remember(self, key: Key, resource_version: str) -> None:
        with self._lock:
            self._versions[key] = resource_version

    def is_own(self, key: Key, resource_version: str | None) -> bool:
        with self._lock:
            return resource_version is not None and self._versions.get(key) == resource_version

    def forget(self, key: Key) -> None:
        with self._lock:
            self._versions.pop(key, None)


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        metrics: Metrics,
        planner: TrialPlanner | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.planner = planner or planner_named(settings.planner, settings.policy.cost)
        self.clock = clock
        self.own_writes = OwnWrites()

    def __call__(self, key: Key) -> float | None:
        started = time.monotonic()
        result = "error"
        try:
            again, result = self.reconcile(*key)
            return again
        finally:
            self.metrics.reconcile.labels(result).observe(time.monotonic() - started)

    def reconcile(self, namespace: str, name: str) -> tuple[float | None, str]:
        raw = self.kube.get_trainingjob(namespace, name)
        pods_raw = self.kube.list_job_pods(namespace, name)
        if raw is None:
            # Gone: owner references remove its pods; only the ledger finalizers hold them.
            self._release(pods_raw, releasable_orphans([parse_pod(p) for p in pods_raw], None))
            self.metrics.forget(namespace, name)
            self.own_writes.forget((namespace, name))
            return None, "gone"
        try:
            job = parse_trainingjob(raw)
        except InvalidObject as problem:
            return self._invalid(raw, str(problem))
        pods = [parse_pod(p) for p in pods_raw]
        self._release(pods_raw, releasable_orphans(pods, job.ref.uid))
        now = self.clock()
        world = World(
            pods={p.name: p for p in pods},
            nodes=self.kube.nodes(p.node for p in pods if p.node and p.owner_uid == job.ref.uid),
            calibration=self.kube.calibration(),
            policy=self.settings.policy,
            planner=self.planner,
            now=now,
            catalog=self.kube.catalog(),
        )
        decided = plan(job, world)
        if decided.status_changed(job.status):
            try:
                written = self.kube.write_status(raw, decided.status.to_json())
            except StatusConflict:
                return CONFLICT_RETRY_SECONDS, "conflict"
            self.own_writes.remember((namespace, name), written["metadata"]["resourceVersion"])
            self.metrics.record(namespace, name, job.status, decided.status)
        else:
            self.metrics.observe(namespace, name, decided.status)
        again = self._apply(raw, pods_raw, decided.creates, decided.deletes, decided.releases, now)
        for event in decided.events:
            self.kube.emit(raw, event, now)
        for backbone in decided.verified_backbones:
            self.kube.mark_backbone_verified(backbone, f"{namespace}/{name}", now)
        if decided.requeue_after is not None:
            again = decided.requeue_after if again is None else min(again, decided.requeue_after)
        finished = decided.status.phase in (JobPhase.SUCCEEDED, JobPhase.FAILED)
        if again is None and not finished:
            again = self.settings.resync_seconds
        return again, "ok"

    def _apply(
        self,
        raw: dict[str, Any],
        pods_raw: list[dict[str, Any]],
        creates: Any,
        deletes: Any,
        releases: Any,
        now: datetime,
    ) -> float | None:
        again: float | None = None
        for manifest in creates:
            try:
                self.kube.create(manifest)
            except CreateRefused as refused:
                # Quota, admission or RBAC: tell the user, try again later.
                self.kube.emit(raw, Event("Warning", "CreateFailed", str(refused)), now)
                again = CREATE_RETRY_SECONDS
                if manifest["kind"] == "ConfigMap":
                    break  # its pod would only wait for it
        namespace = raw["metadata"]["namespace"]
        for delete in deletes:
            self.kube.delete_pod(namespace, delete.name)
        self._release(pods_raw, list(releases))
        return again

    def _release(self, pods_raw: list[dict[str, Any]], names: list[str]) -> None:
        by_name = {p["metadata"]["name"]: p for p in pods_raw}
        for name in names:
            if name in by_name:
                self.kube.release_pod(by_name[name])

    def _invalid(self, raw: dict[str, Any], problem: str) -> tuple[float | None, str]:
        """A job the operator cannot read: say so in its conditions, touch nothing else."""
        metadata = raw["metadata"]
        generation = int(metadata.get("generation") or 0)
        status = dict(raw.get("status") or {})
        said = (status.get("observedGeneration"), status.get("reason"), status.get("message"))
        if said == (generation, "InvalidSpec", problem):
            return None, "invalid"
        try:
            existing = [Condition.model_validate(c) for c in status.get("conditions") or []]
        except ValidationError:
            existing = []
        where = Situation(JobPhase.PENDING, "InvalidSpec", problem, "InvalidSpec", problem)
        conditions = job_conditions(existing, where, generation, self.clock())
        status.update(
            observedGeneration=generation,
            reason="InvalidSpec",
            message=problem,
            conditions=[
                c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in conditions
            ],
        )
        try:
            self.kube.write_status(raw, status)
        except StatusConflict:
            return CONFLICT_RETRY_SECONDS, "conflict"
        log.warning("%s/%s is invalid: %s", metadata["namespace"], metadata["name"], problem)
        return None, "invalid"
