"""The TrainingJob status: conditions, the GPU-second ledger, trials, the result.

Attempt records are the ledger's lines; every total in `budget` is recomputed
from them (core/ledger.py), never accumulated.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from tailor_contract import DatasetFacts, PretrainedBackbone
from tailor_operator.core.spec import Scalar
from tailor_operator.core.timeutil import format_time

Timestamp = Annotated[datetime, PlainSerializer(format_time, return_type=str)]


class JobPhase(StrEnum):
    PENDING = "Pending"
    VALIDATING = "Validating"
    TRAINING = "Training"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class AttemptPhase(StrEnum):
    CREATING = "Creating"  # recorded (budget reserved), pod not seen yet
    PENDING = "Pending"  # pod seen, container not started
    RUNNING = "Running"
    STOPPING = "Stopping"  # the operator asked for the pod's deletion
    FINISHED = "Finished"  # final: the record never changes again


class Outcome(StrEnum):
    COMPLETED = "Completed"
    STOPPED_AT_ALLOWANCE = "StoppedAtAllowance"
    EARLY_STOPPED = "EarlyStopped"
    CANCELLED = "Cancelled"
    DIVERGED = "Diverged"
    DATASET_NOT_FOUND = "DatasetNotFound"
    DATASET_CORRUPT = "DatasetCorrupt"
    BUDGET_NOT_ENOUGH = "BudgetNotEnough"
    EVICTED = "Evicted"
    PREEMPTED = "Preempted"
    NODE_LOST = "NodeLost"
    DELETED = "Deleted"  # by a person or a controller, without DisruptionTarget
    IMAGE_PULL_FAILED = "ImagePullFailed"
    OOM_KILLED = "OOMKilled"  # a configuration the search chose
    OOM_KILLED_USER_CONFIG = "OOMKilledUserConfig"  # a configuration the user chose
    INVALID_CONFIG = "InvalidConfig"  # the trainer refused the job's own configuration
    EXPORT_REFUSED = "ExportRefused"  # the trained model failed the export's check
    RETRYABLE = "Retryable"
    CRASHED = "Crashed"
    LOST = "Lost"


class Billing(StrEnum):
    RESERVED = "Reserved"
    CHARGED = "Charged"
    WAIVED = "Waived"


class StopRequest(StrEnum):
    """Why the operator itself deleted an attempt's pod."""

    ALLOWANCE_EXCEEDED = "AllowanceExceeded"
    EARLY_STOPPED = "EarlyStopped"
    CANCELLED = "Cancelled"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    NODE_LOST = "NodeLost"


class TrialState(StrEnum):
    QUEUED = "Queued"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class StopReason(StrEnum):
    CONVERGED = "Converged"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    NO_IMPROVEMENT = "NoImprovement"


class FailureReason(StrEnum):
    DATASET_NOT_FOUND = "DatasetNotFound"
    DATASET_CORRUPT = "DatasetCorrupt"
    BUDGET_NOT_ENOUGH = "BudgetNotEnough"
    TRAINING_DIVERGED = "TrainingDiverged"
    INVALID_SPEC = "InvalidSpec"
    NO_MODEL_EXPORTED = "NoModelExported"
    UNKNOWN = "Unknown"


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(_Status):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: Timestamp
    observed_generation: int | None = None


class BudgetStatus(_Status):
    limit_gpu_seconds: float = 0.0
    charged_gpu_seconds: float = 0.0
    waived_gpu_seconds: float = 0.0
    reserved_gpu_seconds: float = 0.0
    summary: str = ""


class AttemptRecord(_Status):
    """One line of the ledger: one pod, from reservation to a final charge or waiver."""

    attempt: int
    pod: str
    phase: AttemptPhase = AttemptPhase.CREATING
    created_at: Timestamp
    scheduled_at: Timestamp | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    node: str | None = None
    gpu_product: str | None = None
    gpus: int = 0
    calibration_factor: float | None = None
    calibration_version: str | None = None
    allowance_gpu_seconds: float = 0.0
    stop_requested: StopRequest | None = None
    exit_code: int | None = None
    outcome: Outcome | None = None
    billing: Billing = Billing.RESERVED
    billing_reason: str = ""
    gpu_seconds: float = 0.0
    charged_gpu_seconds: float = 0.0
    waived_gpu_seconds: float = 0.0
    metrics: dict[str, float] = Field(default_factory=dict)
    # Epochs the trial's training holds after this attempt (cumulative over its
    # attempts), as the trainer reported: the search learns its costs from it.
    epochs: float | None = None
    # The export bundle this attempt's trainer reported writing, and the sha256 of its
    # weights: only an attempt with both can deliver the job's model (core/result.py).
    export_uri: str | None = None
    export_digest: str | None = None
    message: str = ""

    @property
    def final(self) -> bool:
        return self.phase == AttemptPhase.FINISHED


class DatasetSummary(_Status):
    images: int = 0
    classes: int = 0
    mean_width: float = 0.0
    mean_height: float = 0.0
    digest: str = ""
    eval_images: int | None = None
    majority_fraction: float | None = None
    pixel_reference: float | None = None
    mirrored_pixel_reference: float | None = None

    @classmethod
    def of(cls, facts: DatasetFacts) -> "DatasetSummary":
        """What the status keeps of validation's facts: the inputs of the search's cost
        model (facts() turns them back)."""
        return cls(**facts.model_dump(include=set(cls.model_fields)))

    def facts(self) -> DatasetFacts:
        """The facts validation reported, as the status keeps them: the same inputs the
        trainer's estimate had, so both sides compute the same numbers."""
        return DatasetFacts(**self.model_dump())


class ValidationStatus(_Status):
    state: Literal["Pending", "Running", "Retrying", "Succeeded", "Failed"] = "Pending"
    attempts: list[AttemptRecord] = Field(default_factory=list)
    dataset: DatasetSummary | None = None
    problems: list[str] = Field(default_factory=list)
    estimated_min_gpu_seconds: float | None = None
    message: str = ""
    # The catalogued backbones validation read and verified (a snapshot: the trials
    # fine-tune exactly these weights even if the catalog changes meanwhile).
    backbones: list[PretrainedBackbone] = Field(default_factory=list)
    unusable_backbones: dict[str, str] = Field(default_factory=dict)


class TrialStatus(_Status):
    name: str
    model: str
    # Who chose the configuration: an out-of-memory kill of the user's own choice is
    # the user's to fix (charged, not retried); of the search's, the system's (waived).
    chosen_by: Literal["search", "user"] = "search"
    pretrained: str | None = None
    backbone: str | None = None  # the catalogued backbone it fine-tunes
    hyperparameters: dict[str, Scalar] = Field(default_factory=dict)
    gpus: int = 1
    allowance_gpu_seconds: float = 0.0
    state: TrialState = TrialState.QUEUED
    outcome: Outcome | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    primary_metric: str | None = None
    charged_gpu_seconds: float = 0.0
    waived_gpu_seconds: float = 0.0
    export_uri: str | None = None
    export_digest: str | None = None
    message: str = ""
    attempts: list[AttemptRecord] = Field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.state in (TrialState.SUCCEEDED, TrialState.FAILED, TrialState.SKIPPED)


class BestTrial(_Status):
    name: str
    model: str
    metric: str
    value: float | None = None
    summary: str = ""


class ModelStatus(_Status):
    uri: str
    digest: str | None = None  # sha256 of the exported weights, as the trainer wrote them
    metrics: dict[str, float] = Field(default_factory=dict)


class CalibrationRef(_Status):
    version: str
    default_factor: float


class TrainingJobStatus(_Status):
    observed_generation: int | None = None
    phase: JobPhase = JobPhase.PENDING
    reason: str | None = None
    message: str = ""
    conditions: list[Condition] = Field(default_factory=list)
    start_time: Timestamp | None = None
    training_start_time: Timestamp | None = None
    completion_time: Timestamp | None = None
    calibration: CalibrationRef | None = None
    budget: BudgetStatus = Field(default_factory=BudgetStatus)
    validation: ValidationStatus = Field(default_factory=ValidationStatus)
    trials: list[TrialStatus] = Field(default_factory=list)
    best_trial: BestTrial | None = None
    model: ModelStatus | None = None
    stop_reason: StopReason | None = None

    def to_json(self) -> dict[str, object]:
        """The status as the API server stores it (camelCase, no nulls)."""
        dumped: dict[str, object] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return dumped
