"""The hyperparameters a trial accepts, with their defaults.

TrialConfig.hyperparameters stays a plain mapping (the search writes it); this model
is how both sides read it, so the operator can refuse a bad key before any GPU runs.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Hyperparameters(BaseModel):
    # A misspelt key must fail loudly, not train with a default the user did not ask for.
    model_config = ConfigDict(extra="forbid", frozen=True)

    recipe: Literal["train", "linear_probe", "probe_finetune"] = Field(
        default="train",
        description=(
            "train: every weight trains (from scratch, or from pretrained weights); "
            "linear_probe: the backbone stays frozen, its features are computed once and "
            "only a linear classifier is fitted; probe_finetune: that probe first, then "
            "every weight fine-tunes from it (the backbone at lr * backbone_lr_scale)"
        ),
    )
    detector: Literal["fcos", "retinanet"] = Field(
        default="fcos",
        description=(
            "detection only: the dense head on the backbone's feature pyramid, FCOS "
            "(anchor-free) or RetinaNet (9 anchors per point, focal loss)"
        ),
    )
    backbone_lr_scale: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="learning-rate multiplier of every weight outside the classifier",
    )
    probe_weight_decay: float = Field(
        default=1e-3, ge=0, description="L2 penalty of the linear probe's classifier"
    )
    lr: float = Field(default=1e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(default=0.05, ge=0, description="AdamW decoupled weight decay")
    batch_size: int = Field(default=32, ge=1, description="images per step on each GPU/process")
    epochs: float = Field(default=10.0, gt=0, description="passes over the training split")
    max_steps: int | None = Field(
        default=None, ge=1, description="optimizer steps; overrides epochs when set"
    )
    warmup_fraction: float = Field(
        default=0.05, ge=0, lt=1, description="share of the steps spent warming up linearly"
    )
    min_lr_ratio: float = Field(
        default=0.01, ge=0, le=1, description="cosine decay floor, as a fraction of lr"
    )
    input_size: int | None = Field(
        default=None, ge=16, description="square input side in pixels; default: the model's"
    )
    augmentation: float = Field(
        default=0.5, ge=0, le=1, description="0 = none, 1 = strongest timm augmentation"
    )
    hflip: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="probability that augmentation mirrors a training image left to right; "
        "0 where mirroring changes the class (digits, text), whatever `augmentation` is",
    )
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    drop_path: float = Field(default=0.0, ge=0, lt=1, description="stochastic depth rate")
    grad_clip: float = Field(default=0.0, ge=0, description="max gradient norm; 0 = off")
    eval_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="held out for evaluation when no eval split is given"
    )
    eval_every_epochs: float = Field(default=1.0, gt=0)
    threshold: float = Field(
        default=0.5, gt=0, lt=1, description="multilabel decision threshold for P/R/F1"
    )
    precision: Literal["bf16", "fp32"] = Field(
        default="bf16", description="autocast dtype on CUDA; CPU always runs fp32"
    )
    channels_last: bool = Field(default=True, description="memory format on CUDA")
    compile: bool = Field(default=False, description="torch.compile the model")
    workers: int = Field(default=4, ge=0, description="data loader processes per GPU")
    log_every_steps: int = Field(default=50, ge=1)
    checkpoint_every_seconds: float = Field(default=600.0, gt=0)
    divergence_patience_steps: int = Field(
        default=1000, ge=1, description="steps the loss may stay at chance level"
    )


def hyperparameter_defaults() -> dict[str, object]:
    """Every key with its default, for documentation and for search spaces."""
    return Hyperparameters().model_dump()
