"""The documents passed between operator and trainer: a config in, a result out.

The operator never reads object storage (the credentials belong to the pods), so
the trainer reports its result through the container's termination message,
which Kubernetes caps at 4096 bytes; the full result lives beside the outputs.
"""

from pydantic import BaseModel, ConfigDict, Field

from tailor_contract.backbones import PretrainedBackbone, Task
from tailor_contract.prices import CostModel

TERMINATION_MESSAGE_PATH = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT = 4096


class _Document(BaseModel):
    # Unknown fields are refused: a typo in a config must not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetRef(_Document):
    train: str = Field(description="URI of the COCO annotation file for training (s3:// or a path)")
    evaluation: str | None = Field(
        default=None, description="URI of the evaluation annotation file; else a split of train"
    )
    endpoint: str | None = Field(default=None, description="S3-compatible endpoint URL")


class SearchTrial(_Document):
    """One trial of the search as the evaluation report shows it."""

    name: str
    model: str
    recipe: str = "train"
    state: str = Field(description="the trial's state: Running, Succeeded, Stopped, ...")
    metric: float | None = None
    charged_gpu_seconds: float = 0.0
    attempts: int = 0
    promotions: int = Field(default=0, ge=0, description="attempts that continued it")
    ended: str = Field(default="", description="why it ended: completed, stopped early, ...")


class GivenTrial(_Document):
    """Validation only: a trial spec.search.trials lists, checked and priced before any GPU."""

    model: str = Field(description="timm model name")
    pretrained: str | None = Field(default=None, description="URI of safetensors weights")
    gpus: int = Field(default=1, ge=1)
    input_size: int | None = Field(default=None, gt=0, description="its input_size, if set")
    epochs: float | None = Field(default=None, gt=0, description="its epochs, if set")
    max_steps: int | None = Field(default=None, ge=1, description="its max_steps, if set")
    batch_size: int | None = Field(default=None, ge=1, description="its batch_size, if set")


class TrialConfig(_Document):
    """Everything one trial attempt needs; written by the operator, read by the trainer."""

    job: str = Field(description="namespace/name of the TrainingJob")
    job_uid: str = Field(
        min_length=1,
        description=(
            "metadata.uid of the TrainingJob: the identity its checkpoints record. An "
            "attempt resumes implicitly only from a checkpoint of its own job and trial"
        ),
    )
    job_output: str | None = Field(
        default=None,
        description=(
            "the TrainingJob's output prefix (spec.output), which the job owns: validation "
            "claims it with a marker object and refuses a prefix another job or anything "
            "else wrote to; trials check the claim. None: no claim (a trainer run by hand)"
        ),
    )
    trial: str = Field(description="trial identifier, stable across attempts")
    attempt: int = Field(ge=1)
    task: Task
    dataset: DatasetRef
    model: str = Field(description="timm model name")
    pretrained: str | None = Field(default=None, description="URI of safetensors weights")
    backbone: PretrainedBackbone | None = Field(
        default=None,
        description=(
            "the catalogued backbone this trial fine-tunes: its weights (digest checked), "
            "input size and normalisation; model equals its architecture"
        ),
    )
    catalog: list[PretrainedBackbone] = Field(
        default_factory=list,
        description="validation only: the catalogued backbones to read and verify",
    )
    search: list[SearchTrial] = Field(
        default_factory=list,
        description="the search's trials when this attempt started, for the report",
    )
    given_trials: list[GivenTrial] = Field(
        default_factory=list,
        description=(
            "validation only: spec.search.trials, in order: their models must exist, their "
            "weights be readable, and the budget is checked against what they will run"
        ),
    )
    candidate_models: list[str] = Field(
        default_factory=list,
        description="validation only: spec.search.models, in order: each must exist in timm",
    )
    hyperparameters: dict[str, float | int | str | bool] = Field(default_factory=dict)
    allowance_gpu_seconds: float = Field(
        gt=0, description="calibrated GPU-seconds this attempt may use; it stops itself there"
    )
    calibration_factor: float = Field(gt=0, description="calibrated seconds per real GPU-second")
    calibration_factors: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "factor per GPU product, keyed like the node label nvidia.com/gpu.product (the "
            "device name with spaces as '-'). The pod is created before it is scheduled, so "
            "calibration_factor is the highest factor it may meet; a trainer that knows its "
            "product may use the finer one from here"
        ),
    )
    gpus: int = Field(ge=0, description="GPUs this attempt has; 0 for CPU-only work")
    output: str = Field(description="URI prefix for checkpoints, results and exports")
    export: bool = Field(default=False, description="write the export bundle at the end")
    seed: int = 0
    resume: str | None = Field(
        default=None,
        description=(
            "URI of a checkpoint to resume from, whoever wrote it; default: the latest under "
            "output, if this job's trial wrote it"
        ),
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Prometheus port of the trainer; 0 = off; None = env TAILOR_METRICS_PORT",
    )
    primary_metric: str | None = Field(
        default=None, description="metric that picks the best checkpoint; default per task"
    )
    cost_model: CostModel | None = Field(
        default=None,
        description=(
            "the priors the operator prices its search with; validation checks the budget "
            "against the cheapest useful search at these prices. None: the reference prices"
        ),
    )


class DatasetFacts(_Document):
    """What validation learned about a dataset; the search sizes itself from it."""

    images: int = Field(ge=0)
    classes: int = Field(ge=0)
    mean_width: float = Field(ge=0)
    mean_height: float = Field(ge=0)
    digest: str = Field(description="digest of the annotation files, for the model card")
    eval_images: int | None = Field(default=None, ge=0, description="images in the eval split")
    annotations: int | None = Field(default=None, ge=0)
    min_class_images: int | None = Field(
        default=None, ge=0, description="images of the rarest class in the training split"
    )
    pixel_mean: list[float] | None = Field(default=None, description="RGB mean in [0, 1]")
    pixel_std: list[float] | None = Field(default=None, description="RGB std in [0, 1]")
    decoded_images: int | None = Field(
        default=None, ge=0, description="images actually decoded for these statistics"
    )
    majority_fraction: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="share of the evaluation split in its most common class: what always "
        "answering that class scores (top-1), the floor any model must clear",
    )
    pixel_reference: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="top-1 on the evaluation split of a logistic regression on 16x16 "
        "thumbnails of the training split: the cheapest learner that sees the pixels",
    )
    mirrored_pixel_reference: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="top-1 of that same regression on the evaluation images mirrored left "
        "to right: far below pixel_reference, mirroring changes what the images show",
    )


class AttemptResult(_Document):
    """The summary a trainer leaves in its termination message."""

    exit: str = Field(description="ExitCode name")
    reason: str = Field(default="", description="what happened, in words a user can act on")
    metrics: dict[str, float] = Field(default_factory=dict)
    steps: int = Field(default=0, ge=0)
    images_seen: int = Field(default=0, ge=0)
    epochs: float = Field(default=0.0, ge=0)
    wall_seconds: float = Field(default=0.0, ge=0)
    gpu_seconds: float = Field(default=0.0, ge=0)
    dataset: DatasetFacts | None = None
    estimated_min_gpu_seconds: float | None = None
    problems: list[str] = Field(default_factory=list, description="first problems found")
    problem_counts: dict[str, int] = Field(
        default_factory=dict, description="every problem found, counted by kind"
    )
    stopped_by: str | None = Field(
        default=None,
        description="completed | allowance | signal | diverged | dataset | budget",
    )
    primary_metric: str | None = Field(default=None, description="key in metrics used to rank")
    resumed_from_step: int | None = Field(default=None, ge=0)
    checkpoint_uri: str | None = None
    result_uri: str | None = Field(default=None, description="the full result document (JSON)")
    export_uri: str | None = Field(default=None, description="prefix of the export bundle")
    export_digest: str | None = Field(
        default=None,
        description=(
            "sha256 of the exported weights (model.safetensors), written and read back; "
            "with export_uri, the proof the bundle exists that the job may deliver"
        ),
    )
    verified_backbones: list[str] = Field(
        default_factory=list, description="validation: catalog entries read and digest-checked"
    )
    unusable_backbones: dict[str, str] = Field(
        default_factory=dict, description="validation: catalog entries that failed, and why"
    )

    def to_termination_message(self) -> str:
        """JSON within Kubernetes' termination message limit, dropping detail first."""
        text = self.model_dump_json(exclude_defaults=True)
        if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
            return text
        trimmed = self.model_copy(update={"problems": self.problems[:5]})
        text = trimmed.model_dump_json(exclude_defaults=True)
        if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
            return text
        # The catalog's verdicts keep every name (the operator needs which entries are
        # usable) but only the start of each reason; the full ones are in the result file.
        unusable = {name: why[:80] for name, why in self.unusable_backbones.items()}
        bare = trimmed.model_copy(
            update={"problems": [], "reason": self.reason[:1000], "unusable_backbones": unusable}
        )
        return bare.model_dump_json(exclude_defaults=True)
