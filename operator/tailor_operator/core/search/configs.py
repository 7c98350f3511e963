"""A configuration the search proposes: one trial's backbone, recipe and knobs, and how
it is written to (and read back from) the trial's hyperparameters."""

from dataclasses import dataclass

from tailor_operator.core.search.knobs import LINEAR_PROBE, PROBE_FINETUNE, TRAIN
from tailor_operator.core.spec import Scalar

# Fine-tuning from a probe warms up over 30% of its steps: the probe's classifier is
# confident (separable features), and full-rate steps from the first one pushed the
# backbone's features off it until the network answered uniformly (10 scans per class
# at 32 px: chance from step 5 with 5% warmup, 0.9 with 30%).
FINETUNE_WARMUP_FRACTION = 0.3


@dataclass(frozen=True)
class Config:
    model: str
    input_size: int
    batch_size: int
    lr: float
    weight_decay: float
    augmentation: float
    recipe: str = TRAIN
    backbone: str | None = None  # the catalog entry fine-tuned; None: from scratch
    backbone_lr_scale: float = 1.0
    eval_every: float = 1.0  # epochs between evaluations

    @property
    def pretrained(self) -> bool:
        return self.backbone is not None

    @property
    def probe(self) -> bool:
        return self.recipe == LINEAR_PROBE

    def hyperparameters(self, epochs: float) -> dict[str, Scalar]:
        values: dict[str, Scalar] = {
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "input_size": self.input_size,
            "augmentation": self.augmentation,
            "epochs": epochs,
        }
        if self.recipe != TRAIN:
            values["recipe"] = self.recipe
        if self.recipe == PROBE_FINETUNE:
            values["warmup_fraction"] = FINETUNE_WARMUP_FRACTION
        if self.backbone_lr_scale != 1.0:
            values["backbone_lr_scale"] = self.backbone_lr_scale
        if self.eval_every != 1.0:
            values["eval_every_epochs"] = self.eval_every
        return values


def config_of(
    model: str, hyperparameters: dict[str, Scalar], backbone: str | None = None
) -> Config:
    """The configuration a trial runs, read back from its status (defaults filled)."""

    def number(key: str, default: float) -> float:
        value = hyperparameters.get(key, default)
        return float(value) if isinstance(value, int | float) else default

    recipe = hyperparameters.get("recipe", TRAIN)
    return Config(
        model=model,
        input_size=int(number("input_size", 224)),
        batch_size=int(number("batch_size", 32)),
        lr=number("lr", 1e-3),
        weight_decay=number("weight_decay", 0.05),
        augmentation=number("augmentation", 0.5),
        recipe=recipe if isinstance(recipe, str) else TRAIN,
        backbone=backbone,
        backbone_lr_scale=number("backbone_lr_scale", 1.0),
        eval_every=number("eval_every_epochs", 1.0),
    )
