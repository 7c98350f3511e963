"""AdamW with linear warmup and cosine decay, by step (so resuming mid-epoch is exact);
the classifier at the peak learning rate, the backbone at a fraction of it."""

import math
from dataclasses import dataclass
from typing import Any

import torch
from timm.optim._optim_factory import create_optimizer_v2
from timm.optim._param_groups import param_groups_weight_decay
from torch.optim.lr_scheduler import LambdaLR

from tailor_contract import Hyperparameters
from tailor_trainer.model import classifier_keys, in_classifier


def param_groups(model: torch.nn.Module, hp: Hyperparameters) -> list[dict[str, Any]]:
    """timm's weight-decay groups (no decay on biases, norm weights and the model's
    `no_weight_decay()` names), each split into the classifier at `lr` and the rest at
    `lr * backbone_lr_scale`. Classifier groups come first: `param_groups[0]["lr"]` is
    the peak learning rate the logs show. Frozen parameters are left out."""
    no_weight_decay: set[str] = getattr(model, "no_weight_decay", set)()
    groups = param_groups_weight_decay(
        model, weight_decay=hp.weight_decay, no_weight_decay_list=no_weight_decay
    )
    heads = classifier_keys(model)
    classifier = {id(p) for name, p in model.named_parameters() if in_classifier(name, heads)}
    split: list[dict[str, Any]] = []
    for part, lr in (("classifier", hp.lr), ("backbone", hp.lr * hp.backbone_lr_scale)):
        for group in groups:
            mine = [p for p in group["params"] if (id(p) in classifier) == (part == "classifier")]
            if mine:
                split.append(
                    {"params": mine, "lr": lr, "weight_decay": group["weight_decay"], "part": part}
                )
    return split


def create_optimizer(model: torch.nn.Module, hp: Hyperparameters) -> torch.optim.Optimizer:
    """AdamW over `param_groups`: biases and norm weights are left out of weight decay,
    the backbone learns at lr * backbone_lr_scale."""
    on_cuda = next(model.parameters()).is_cuda
    # The fused CUDA kernel updates every tensor in one launch: measurably faster.
    extra: dict[str, Any] = {"fused": True} if on_cuda else {}
    optimizer: torch.optim.Optimizer = create_optimizer_v2(
        model,
        opt="adamw",
        lr=hp.lr,
        weight_decay=hp.weight_decay,
        param_group_fn=lambda module: param_groups(module, hp),
        **extra,
    )
    return optimizer


def warmup_cosine(step: int, total: int, warmup: int, floor: float) -> float:
    """The learning-rate multiplier at a step: 0 -> 1 linearly, then cosine down to floor."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class Schedule:
    """Warmup then cosine over `total` steps, which `shorten` may bring forward once the
    attempt knows what its allowance fits (schedule_fit.py): a run cut at the allowance
    half way down its cosine keeps weights trained at a high learning rate."""

    total: int
    warmup_fraction: float
    floor: float

    @classmethod
    def of(cls, hp: Hyperparameters, total: int) -> "Schedule":
        return cls(total, hp.warmup_fraction, hp.min_lr_ratio)

    def __call__(self, step: int) -> float:
        warmup = int(self.warmup_fraction * self.total)
        return warmup_cosine(step, self.total, warmup, self.floor)

    def shorten(self, total: int) -> None:
        if not 0 < total <= self.total:
            raise ValueError(f"a schedule of {self.total} steps cannot end at step {total}")
        self.total = total


def scheduler_for(optimizer: torch.optim.Optimizer, schedule: Schedule) -> LambdaLR:
    # A lambda, not the Schedule itself: LambdaLR saves a callable object's fields in
    # its state, and a resumed promotion's longer plan must not be replaced by the
    # rung's. The trial keeps the fitted length in its books instead.
    return LambdaLR(optimizer, lambda step: schedule(step))


def create_scheduler(optimizer: torch.optim.Optimizer, hp: Hyperparameters, total: int) -> LambdaLR:
    return scheduler_for(optimizer, Schedule.of(hp, total))
