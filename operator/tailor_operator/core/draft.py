"""The status being planned, with what the plan has learnt along the way."""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tailor_contract import PretrainedBackbone
from tailor_operator.core.attempts import request_stop
from tailor_operator.core.calibration import CalibrationTable
from tailor_operator.core.ledger import totals
from tailor_operator.core.models import TrainingJob
from tailor_operator.core.naming import attempt_name
from tailor_operator.core.observe import NodeView, PodView
from tailor_operator.core.planner import TrialPlanner
from tailor_operator.core.policy import Policy
from tailor_operator.core.status import (
    AttemptRecord,
    BudgetStatus,
    FailureReason,
    JobPhase,
    StopRequest,
    TrainingJobStatus,
)


@dataclass(frozen=True)
class World:
    """Everything the plan reads besides the job itself."""

    pods: Mapping[str, PodView]
    nodes: Mapping[str, NodeView]
    calibration: CalibrationTable
    policy: Policy
    planner: TrialPlanner
    now: datetime
    catalog: Sequence[PretrainedBackbone] = ()  # the cluster's Backbone objects


@dataclass
class Draft:
    job: TrainingJob
    world: World
    status: TrainingJobStatus
    wake: list[datetime] = field(default_factory=list)

    @property
    def now(self) -> datetime:
        return self.world.now

    @property
    def limit(self) -> float:
        return self.job.spec.budget.limit_gpu_seconds

    def records(self) -> Iterator[tuple[str | None, AttemptRecord]]:
        """Every ledger line with its trial name (None: validation)."""
        for record in self.status.validation.attempts:
            yield None, record
        for trial in self.status.trials:
            for record in trial.attempts:
                yield trial.name, record

    def ledger(self) -> Iterator[AttemptRecord]:
        """Every ledger line of the job."""
        return (record for _, record in self.records())

    def budget(self) -> BudgetStatus:
        return totals(self.limit, self.ledger())

    def new_record(self, trial: str, attempt: int, gpus: int, allowance: float) -> AttemptRecord:
        return AttemptRecord(
            attempt=attempt,
            pod=attempt_name(self.job.ref.name, self.job.ref.uid, trial, attempt),
            created_at=self.now,
            gpus=gpus,
            allowance_gpu_seconds=allowance,
        )

    @property
    def finished(self) -> bool:
        return self.status.phase in (JobPhase.SUCCEEDED, JobPhase.FAILED)

    def fail(self, reason: FailureReason, message: str) -> None:
        """End the job; attempts still running are stopped (charged for what they ran)."""
        if self.finished:
            return
        self.status.phase = JobPhase.FAILED
        self.status.reason = reason.value
        self.status.message = message
        self.status.completion_time = self.now
        self.cancel_running()

    def cancel_running(self) -> None:
        validation = self.status.validation
        validation.attempts = [request_stop(r, StopRequest.CANCELLED) for r in validation.attempts]
        for trial in self.status.trials:
            trial.attempts = [request_stop(r, StopRequest.CANCELLED) for r in trial.attempts]
