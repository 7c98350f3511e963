"""What the pure core needs from the operator's settings."""

from dataclasses import dataclass, field

from tailor_contract.cost import REFERENCE, CostModel

DEFAULT_TRAIN_COMMAND = ("tailor-train", "run", "--config", "/etc/tailor/trial.json")
DEFAULT_VALIDATE_COMMAND = ("tailor-train", "validate", "--config", "/etc/tailor/trial.json")


@dataclass(frozen=True)
class Policy:
    trainer_image: str = "ghcr.io/tailor-dev/tailor-trainer:latest"
    train_command: tuple[str, ...] = DEFAULT_TRAIN_COMMAND
    validate_command: tuple[str, ...] = DEFAULT_VALIDATE_COMMAND
    image_pull_policy: str = "IfNotPresent"
    default_model: str = "resnet50"
    # Attempts per trial (and for validation), the first one included.
    max_attempts: int = 5
    # Waived attempts per job, all trials and validation together (core/retries.py):
    # past it nothing is retried, so the infrastructure's free time has a bound.
    max_waived_attempts: int = 20
    backoff_base_seconds: float = 10.0
    backoff_max_seconds: float = 300.0
    # Past its allowance, an attempt gets this long to checkpoint and exit by itself.
    allowance_grace_seconds: float = 120.0
    # An image that cannot be pulled for this long fails the attempt (waived, retried).
    image_pull_timeout_seconds: float = 120.0
    # A pod being deleted whose kubelet never reports back is given up after this long.
    deletion_timeout_seconds: float = 300.0
    termination_grace_seconds: int = 60
    run_as_user: int = 65532
    cpu_per_gpu: float = 4.0
    memory_gib_per_gpu: float = 32.0
    validation_cpu: float = 1.0
    validation_memory_gib: float = 2.0
    shm_gib: float = 8.0
    extra_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # The search's prices before attempts report; validation pods check budgets with them.
    cost: CostModel = REFERENCE
    # The tenant boundary (core/boundary.py): what a TrainingJob may ask of its pods.
    # None: anything; a tuple: only those (empty: none).
    allowed_endpoints: tuple[str, ...] | None = None  # S3 endpoints credentials go to
    allowed_priority_classes: tuple[str, ...] | None = None
    allowed_toleration_keys: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.max_waived_attempts < 0:
            raise ValueError("max_waived_attempts must not be negative")
        if self.backoff_base_seconds < 0 or self.backoff_max_seconds < 0:
            raise ValueError("backoff seconds must not be negative")
        if not self.train_command or not self.validate_command:
            raise ValueError("the trainer commands must not be empty")
        if not self.trainer_image:
            raise ValueError("the trainer image must be set")
