"""What a task's search tunes: the recipes, the hyperparameters' ranges and defaults.

Classification probes a catalogued backbone first (a linear classifier on frozen
features), then fine-tunes from the probe. Detection has no probe (a detector's neck and
head are not linear on the backbone's features): it fine-tunes a catalogued backbone
directly, its new neck and head at lr, the backbone at lr * backbone_lr_scale.
"""

from dataclasses import dataclass

from tailor_contract.backbones import Task

# Recipes (Hyperparameters.recipe).
TRAIN = "train"
LINEAR_PROBE = "linear_probe"
PROBE_FINETUNE = "probe_finetune"


@dataclass(frozen=True)
class Knobs:
    lr_range: tuple[float, float]  # from scratch
    default_lr: float
    weight_decay_range: tuple[float, float]
    augmentation_range: tuple[float, float]
    # Fine-tuning wants gentler steps than training from scratch, and its backbone
    # gentler still: lr for what is new, lr * backbone_lr_scale for the backbone.
    finetune_lr_range: tuple[float, float]
    finetune_default_lr: float
    backbone_lr_scale_range: tuple[float, float]
    finetune_default_backbone_lr_scale: float
    finetune_augmentation_range: tuple[float, float]
    finetune_default_augmentation: float
    finetune_recipe: str  # how a catalogued backbone is fine-tuned
    probes: bool  # a linear probe of the cheapest catalogued backbone comes first
    # Classification feeds a catalogued backbone sides around the one it was pretrained
    # at; detection feeds every backbone the sides its images call for.
    sides_from_backbone: bool


CLASSIFICATION = Knobs(
    lr_range=(1e-4, 1e-2),
    default_lr=1e-3,
    weight_decay_range=(1e-3, 0.2),
    augmentation_range=(0.0, 0.9),
    finetune_lr_range=(3e-4, 3e-3),
    # The default fine-tuning: the classifier at 2e-3, the backbone at 1e-3, mild
    # augmentation. Chosen from a small grid on MNIST, 10 per class, one seed
    # (docs/automl.md gives the grid); the benchmark's other seeds were not used to choose.
    finetune_default_lr=2e-3,
    backbone_lr_scale_range=(0.1, 1.0),
    finetune_default_backbone_lr_scale=0.5,
    # Probe first, then fine-tune (LP-FT): a plain fine-tune starts from a random
    # classifier whose gradients disturb the pretrained features, and on few images
    # it loses to the probe it could have started from.
    finetune_augmentation_range=(0.0, 0.6),
    finetune_default_augmentation=0.3,
    finetune_recipe=PROBE_FINETUNE,
    probes=True,
    sides_from_backbone=True,
)

# Detection: AdamW from 5e-5 to 2e-3 (FCOS with AdamW trains at about 1e-4 from
# pretrained weights; from scratch it takes more). The defaults are priors, not tuned.
DETECTION = Knobs(
    lr_range=(1e-4, 2e-3),
    default_lr=1e-3,
    weight_decay_range=(1e-3, 0.1),
    augmentation_range=(0.0, 0.9),
    finetune_lr_range=(5e-5, 2e-3),
    finetune_default_lr=5e-4,
    backbone_lr_scale_range=(0.1, 1.0),
    finetune_default_backbone_lr_scale=0.5,
    finetune_augmentation_range=(0.0, 0.6),
    finetune_default_augmentation=0.3,
    finetune_recipe=TRAIN,
    probes=False,
    sides_from_backbone=False,
)


def knobs_for(task: Task) -> Knobs:
    return DETECTION if task == "detection" else CLASSIFICATION
