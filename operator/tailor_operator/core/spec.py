"""The TrainingJob spec as typed models.

crds/ is the source of truth: the API server has already applied its schema,
defaults and CEL rules before the operator sees an object, and
tests/unit/operator/test_crd_models.py proves these models say the same thing.
"""

from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# The tasks this trainer can run (tailor_contract.metrics.TRAINABLE_TASKS): the CRD refuses others.
Task = Literal["classification", "multilabel", "detection"]
Scalar = float | int | str | bool

SECONDS_PER_HOUR = 3600


class _Spec(BaseModel):
    # Unknown fields are ignored, not refused: a newer CRD may carry fields an
    # older operator does not know yet, and the API server already pruned the rest.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class DatasetSpec(_Spec):
    train: str
    evaluation: str | None = None
    credentials_secret: str | None = None
    endpoint: str | None = None


class BudgetSpec(_Spec):
    gpu_hours: str

    @property
    def limit_gpu_seconds(self) -> float:
        """The budget in calibrated GPU-seconds."""
        try:
            hours = Decimal(self.gpu_hours)
        except InvalidOperation as error:
            raise ValueError(
                f"spec.budget.gpuHours must be a decimal number, got {self.gpu_hours!r}"
            ) from error
        return float(hours * SECONDS_PER_HOUR)


class Toleration(_Spec):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class ResourcesSpec(_Spec):
    max_parallel_trials: int = 1
    max_gpus_per_trial: int = 1
    gpu_types: list[str] = Field(default_factory=list)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    priority_class_name: str | None = None


class TrialSpec(_Spec):
    model: str
    pretrained: str | None = None
    hyperparameters: dict[str, Scalar] = Field(default_factory=dict)
    gpus: int | None = None


class SearchSpec(_Spec):
    primary_metric: str | None = None
    goal: Literal["Maximize", "Minimize"] | None = None  # None: the metric's own direction
    models: list[str] = Field(default_factory=list)
    trials: list[TrialSpec] = Field(default_factory=list)


class PodMetadataSpec(_Spec):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class TrainingJobSpec(_Spec):
    task: Task
    dataset: DatasetSpec
    budget: BudgetSpec
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    output: str
    pod_metadata: PodMetadataSpec = Field(default_factory=PodMetadataSpec)
