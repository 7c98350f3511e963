"""Pods of this job that no ledger line knows about.

Records are written before pods are created, so a pod without a record means
the status was lost or replaced (a restore, a hand edit). Its time is put back
on the ledger when its trial is known; otherwise it is stopped.
"""

from collections.abc import Iterable

from tailor_operator.core.actions import DeletePod
from tailor_operator.core.attempts import observe
from tailor_operator.core.draft import Draft
from tailor_operator.core.observe import PodView
from tailor_operator.core.pods import VALIDATION_TRIAL
from tailor_operator.core.status import AttemptPhase, AttemptRecord


def _adopt(
    draft: Draft, pod: PodView, attempts: list[AttemptRecord], gpus: int, allowance: float
) -> list[AttemptRecord]:
    world = draft.world
    record = AttemptRecord(
        attempt=pod.attempt or 1,
        pod=pod.name,
        phase=AttemptPhase.PENDING,
        created_at=pod.created_at or world.now,
        gpus=gpus,
        allowance_gpu_seconds=allowance,
        message="adopted: the pod existed without a ledger line",
    )
    seen = observe(record, pod, world.nodes, world.calibration, world.policy, world.now)
    return sorted([*attempts, seen.record], key=lambda r: r.attempt)


def adopt_strays(draft: Draft) -> tuple[list[DeletePod], list[str]]:
    known = {record.pod for _, record in draft.records()}
    trials = {t.name: t for t in draft.status.trials}
    deletes: list[DeletePod] = []
    releases: list[str] = []
    for pod in draft.world.pods.values():
        if pod.name in known:
            continue
        trial = trials.get(pod.trial or "")
        if pod.attempt is not None and pod.trial == VALIDATION_TRIAL:
            validation = draft.status.validation
            validation.attempts = _adopt(draft, pod, validation.attempts, 0, draft.limit)
        elif pod.attempt is not None and trial is not None:
            trial.attempts = _adopt(
                draft, pod, trial.attempts, trial.gpus, trial.allowance_gpu_seconds
            )
        elif pod.terminal or pod.deleting_since is not None:
            if pod.has_finalizer:
                releases.append(pod.name)
        else:
            deletes.append(DeletePod(pod.name, "Unaccounted"))
    return deletes, releases


def releasable_orphans(pods: Iterable[PodView], job_uid: str | None) -> list[str]:
    """Pods of a job that no longer exists (or of an older job of the same name) whose
    ledger finalizer only blocks their removal: nobody can record them any more."""
    return [
        pod.name
        for pod in pods
        if pod.has_finalizer
        and pod.owner_uid != job_uid
        and (pod.deleting_since is not None or pod.terminal)
    ]
