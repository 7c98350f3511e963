"""From a TrainingJob, its pods, its nodes, the calibration table and `now`: what to
create, what to delete, and the next status.

The caller applies a plan in this order: write the status (guarded by the
resourceVersion it was planned from), then create, delete and release. Writing
first makes every reservation durable before its pod exists, and releases a
pod's ledger finalizer only once its final record is stored; a crash between any
two steps leaves a state the next plan completes, never one it double counts.
"""

from dataclasses import dataclass, replace
from typing import Any

from tailor_operator.core.actions import DeletePod
from tailor_operator.core.adoption import adopt_strays
from tailor_operator.core.attempts import needed_stop, observe, request_stop
from tailor_operator.core.boundary import boundary_problem
from tailor_operator.core.catalog import for_task, pretrained_condition
from tailor_operator.core.conditions import Situation, job_conditions
from tailor_operator.core.draft import Draft, World
from tailor_operator.core.events import Event, describe_changes
from tailor_operator.core.ledger import classify, settle
from tailor_operator.core.models import TrainingJob
from tailor_operator.core.pods import VALIDATION_TRIAL, config_map, pod, trial_config
from tailor_operator.core.report import search_trials
from tailor_operator.core.result import conclude
from tailor_operator.core.situation import situation
from tailor_operator.core.specchecks import spec_problem
from tailor_operator.core.status import (
    AttemptPhase,
    AttemptRecord,
    CalibrationRef,
    JobPhase,
    TrainingJobStatus,
)
from tailor_operator.core.trials import advance_trials, record_trial_result
from tailor_operator.core.validation import advance_validation, record_validation_result

MIN_REQUEUE_SECONDS = 1.0


@dataclass(frozen=True)
class Plan:
    status: TrainingJobStatus
    creates: tuple[dict[str, Any], ...] = ()  # each ConfigMap before its Pod
    deletes: tuple[DeletePod, ...] = ()
    releases: tuple[str, ...] = ()  # pods whose ledger finalizer may go (after the write)
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None
    # Catalogued backbones whose weights a validation of this job read and verified
    # (the caller marks them verified in the catalog).
    verified_backbones: tuple[str, ...] = ()

    def status_changed(self, old: TrainingJobStatus) -> bool:
        return self.status.to_json() != old.to_json()


def _observe_all(draft: Draft) -> None:
    world = draft.world

    def look(record: AttemptRecord, user_config: bool = False) -> tuple[AttemptRecord, Any]:
        seen = observe(
            record,
            world.pods.get(record.pod),
            world.nodes,
            world.calibration,
            world.policy,
            world.now,
            user_config,
        )
        return seen.record, seen.result

    validation = draft.status.validation
    updated = []
    for record in validation.attempts:
        new, result = look(record)
        if new.final and not record.final:
            record_validation_result(draft, new, result)
        updated.append(new)
    validation.attempts = updated
    for trial in draft.status.trials:
        updated = []
        for record in trial.attempts:
            new, result = look(record, trial.chosen_by == "user")
            if new.final and not record.final:
                new = record_trial_result(trial, new, result)
            updated.append(new)
        trial.attempts = updated


def _stop_or_wake(draft: Draft, record: AttemptRecord) -> AttemptRecord:
    world = draft.world
    if (
        record.stop_requested is not None
        and record.phase == AttemptPhase.STOPPING
        and record.pod not in world.pods
        and record.started_at is None
    ):
        # Stopped before its pod ever existed: nothing ran, nothing to wait for.
        outcome, detail = classify(None, record.stop_requested, None, False)
        return settle(record, outcome, detail, started=None, finished=world.now, exit_code=None)
    stop, wake = needed_stop(
        record, world.pods.get(record.pod), world.nodes, world.policy, world.now
    )
    if wake is not None:
        draft.wake.append(wake)
    return request_stop(record, stop) if stop is not None else record


def _stops(draft: Draft) -> None:
    validation = draft.status.validation
    validation.attempts = [_stop_or_wake(draft, r) for r in validation.attempts]
    for trial in draft.status.trials:
        trial.attempts = [_stop_or_wake(draft, r) for r in trial.attempts]


def _actions(
    draft: Draft, problem: str | None
) -> tuple[list[dict[str, Any]], list[DeletePod], list[str]]:
    job, world = draft.job, draft.world
    creates: list[dict[str, Any]] = []
    deletes: list[DeletePod] = []
    releases: list[str] = []
    trials = {t.name: t for t in draft.status.trials}
    offered = for_task(world.catalog, job.spec.task)
    verified = draft.status.validation.backbones
    validation_model = world.planner.first_model(job.spec, world.policy.default_model, offered)
    for trial_name, record in draft.records():
        existing = world.pods.get(record.pod)
        name = trial_name or VALIDATION_TRIAL
        # A job with a problem gets no new pod, not even one reserved before the problem.
        if record.phase == AttemptPhase.CREATING and existing is None and problem is None:
            trial = trials.get(trial_name) if trial_name else None
            config = trial_config(
                job,
                record,
                world.calibration,
                trial,
                validation_model,
                world.policy.cost,
                catalog=verified if trial else offered,
                search=search_trials(draft.status.trials) if trial else (),
            )
            creates.append(config_map(job, record, name, config))
            creates.append(pod(job, record, name, world.policy))
        if existing is None:
            continue
        must_go = record.phase == AttemptPhase.STOPPING or (record.final and not existing.terminal)
        if must_go and existing.deleting_since is None:
            reason = record.stop_requested.value if record.stop_requested else "Recorded"
            deletes.append(DeletePod(record.pod, reason))
        if record.final and existing.has_finalizer:
            releases.append(record.pod)
    return creates, deletes, releases


def _requeue(draft: Draft) -> float | None:
    if not draft.wake:
        return None
    seconds = (min(draft.wake) - draft.now).total_seconds()
    return max(MIN_REQUEUE_SECONDS, seconds)


def plan(job: TrainingJob, world: World) -> Plan:
    own = {name: p for name, p in world.pods.items() if p.owner_uid == job.ref.uid}
    world = replace(world, pods=own)
    if job.deleting:
        # Owner references remove the pods; only the ledger finalizers hold them.
        return Plan(status=job.status, releases=tuple(n for n, p in own.items() if p.has_finalizer))
    draft = Draft(job, world, job.status.model_copy(deep=True))
    status = draft.status
    status.start_time = status.start_time or world.now
    status.calibration = CalibrationRef(
        version=world.calibration.version, default_factor=world.calibration.default_factor
    )
    _observe_all(draft)
    stray_deletes, stray_releases = adopt_strays(draft)
    problem = spec_problem(job.spec) if status.training_start_time is None else None
    # The tenant boundary holds for every pod: spec.resources may change while a job
    # runs, and the platform may narrow its allow-lists.
    problem = problem or boundary_problem(job.spec, world.policy)
    if problem is None:
        advance_validation(draft)
        if status.validation.state == "Succeeded":
            decision = advance_trials(draft)
            conclude(draft, decision.done if decision else None)
    _stops(draft)
    status.budget = draft.budget()
    if problem is not None and not draft.finished:
        status.phase, status.reason, status.message = JobPhase.PENDING, "InvalidSpec", problem
        where = Situation(JobPhase.PENDING, "InvalidSpec", problem, "InvalidSpec", problem)
    else:
        where = situation(draft)
    status.conditions = job_conditions(status.conditions, where, job.generation, world.now)
    pretrained = pretrained_condition(status, job.generation, world.now, job.spec.task)
    if pretrained is not None:
        status.conditions = [c for c in status.conditions if c.type != pretrained.type]
        status.conditions.append(pretrained)
    status.observed_generation = job.generation
    creates, deletes, releases = _actions(draft, problem)
    return Plan(
        status=status,
        creates=tuple(creates),
        deletes=tuple(deletes + stray_deletes),
        releases=tuple(releases + stray_releases),
        events=tuple(describe_changes(job.status, status, job.spec.task)),
        requeue_after=_requeue(draft),
        verified_backbones=tuple(
            e.name for e in status.validation.backbones if e not in job.status.validation.backbones
        ),
    )


__all__ = ["DeletePod", "Plan", "World", "plan"]
