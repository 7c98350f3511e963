"""The one cost model the operator and the trainer share: calibrated GPU-seconds of
training a timm backbone on a dataset, and of the cheapest useful search, per task.

Pure arithmetic on DatasetFacts (no torch). The trainer's validation refuses a budget
below `minimum_search_gpu_seconds` (exit 67); the operator's search sizes its rungs
from the same numbers and checks validation's verdict with them, so both sides always
agree. Priors only: the search corrects them with the timings attempts report.
"""

import math
from collections.abc import Sequence

from tailor_contract.backbones import PretrainedBackbone, Task
from tailor_contract.detection_cost import (
    DETECTION_DEFAULT_SIDE,
    detection_default_side,
    detection_eval_every,
    detection_finetune_full_epochs,
    detection_finetune_min_epochs,
    detection_full_epochs,
    detection_min_epochs,
)
from tailor_contract.documents import DatasetFacts, GivenTrial
from tailor_contract.hyperparameters import Hyperparameters

# Re-exported: the ladders are a table of their own (ladders.py).
from tailor_contract.ladders import BACKBONES as BACKBONES
from tailor_contract.ladders import DETECTION_NECK_GMACS, ladder, measured
from tailor_contract.ladders import TEST_BACKBONES as TEST_BACKBONES
from tailor_contract.ladders import UNKNOWN_GMACS as UNKNOWN_GMACS
from tailor_contract.ladders import Backbone as Backbone
from tailor_contract.ladders import find_backbone as find_backbone

# Re-exported: the priors are a document of their own (prices.py).
from tailor_contract.prices import REFERENCE as REFERENCE
from tailor_contract.prices import CostModel as CostModel

# Sides the search chooses inputs from; multiples of 32 suit every backbone's strides
# and ViT patches of 16.
INPUT_SIDES = (32, 64, 96, 128, 160, 192, 224, 256, 288)
DEFAULT_SIDE = 224
# When no evaluation split is given the trainer holds this share of train out.
DEFAULT_EVAL_FRACTION = 0.2
# The cheapest useful search compares this many configurations.
MIN_SEARCH_TRIALS = 3


def split_images(facts: DatasetFacts) -> tuple[int, int]:
    """(training, evaluation) images as the trainer will use them."""
    if facts.eval_images is not None:
        return facts.images, facts.eval_images
    held_out = round(facts.images * DEFAULT_EVAL_FRACTION)
    return facts.images - held_out, held_out


def default_input_side(facts: DatasetFacts, task: Task = "classification") -> int:
    """Classification: the native resolution rounded up to a multiple of 32, within
    32..224 px. Detection: see detection_cost."""
    if task == "detection":
        return detection_default_side(facts)
    native = min(facts.mean_width, facts.mean_height)
    if native <= 0:
        return DEFAULT_SIDE
    return min(DEFAULT_SIDE, max(INPUT_SIDES[0], 32 * math.ceil(native / 32)))


def full_epochs(train_images: int) -> float:
    """Epochs past which training this data from scratch rarely gains: about two
    million images seen, at least 30 epochs, at most 200."""
    return min(200.0, max(30.0, 2_000_000 / max(1, train_images)))


def min_useful_epochs(train_images: int) -> float:
    """The shortest training whose metric says something about a configuration."""
    return max(1.0, full_epochs(train_images) / 60)


def epoch_range(
    train_images: int, pretrained: bool, task: Task = "classification"
) -> tuple[float, float]:
    """(shortest useful, full) epochs of a training: fine-tuning converges far sooner
    than training from scratch, and a detector needs more epochs than a classifier."""
    if task == "detection":
        if pretrained:
            return (
                detection_finetune_min_epochs(train_images),
                detection_finetune_full_epochs(train_images),
            )
        return detection_min_epochs(train_images), detection_full_epochs(train_images)
    if pretrained:
        return finetune_min_epochs(train_images), finetune_full_epochs(train_images)
    return min_useful_epochs(train_images), full_epochs(train_images)


def eval_every_epochs(facts: DatasetFacts, task: Task = "classification") -> float:
    """How often an attempt evaluates: classification every epoch; detection less often
    when its evaluation split is large (detection_cost.detection_eval_every)."""
    if task != "detection":
        return 1.0
    return detection_eval_every(*split_images(facts))


def epoch_gpu_seconds(
    facts: DatasetFacts,
    backbone: Backbone,
    side: int,
    gpus: int = 1,
    cost: CostModel = REFERENCE,
    task: Task = "classification",
) -> float:
    """Calibrated GPU-seconds of one epoch over train plus its share of evaluation: a
    pass each epoch (classification), or each eval_every_epochs (detection, whose
    evaluation images also pay their post-processing and COCO evaluation)."""
    if side <= 0 or gpus <= 0:
        raise ValueError(f"side and gpus must be positive, got side={side}, gpus={gpus}")
    train, evaluation = split_images(facts)
    pixels = (side / DEFAULT_SIDE) ** 2
    compute = pixels * backbone.relative_cost / cost.reference_gmacs
    if task == "detection":
        compute *= cost.detection_overhead
    per_image = max(
        cost.floor_seconds_per_image * (0.5 + 0.5 * pixels),
        compute / cost.reference_images_per_second,
    )
    per_eval_image = per_image / cost.eval_speedup
    if task == "detection":
        per_eval_image += cost.detection_eval_seconds_per_image
    passes = 1 / eval_every_epochs(facts, task)
    seconds = train * per_image + evaluation * per_eval_image * passes
    return seconds * (1 + cost.multi_gpu_overhead * (gpus - 1))


def attempt_gpu_seconds(
    facts: DatasetFacts,
    backbone: Backbone,
    epochs: float,
    side: int,
    gpus: int = 1,
    cost: CostModel = REFERENCE,
    task: Task = "classification",
) -> float:
    """One attempt: its fixed costs on every GPU plus `epochs` of training."""
    epoch = epoch_gpu_seconds(facts, backbone, side, gpus, cost, task)
    return gpus * cost.fixed_seconds + epochs * epoch


def cheapest_backbone(allowed: Sequence[str] = (), task: Task = "classification") -> Backbone:
    """The cheapest backbone a search may use: of the allowed ones, else of the ladder."""
    candidates = [find_backbone(name, task) for name in allowed] or list(ladder(task))
    return min(candidates, key=lambda b: (b.relative_cost, b.name))


def minimum_search_gpu_seconds(
    facts: DatasetFacts,
    backbone: str | None = None,
    input_side: int | None = None,
    cost: CostModel = REFERENCE,
    task: Task = "classification",
) -> float:
    """The cheapest useful search: MIN_SEARCH_TRIALS short trials (the shortest useful
    training from scratch each) of the cheapest backbone, each paying an attempt's
    fixed costs."""
    chosen = find_backbone(backbone, task) if backbone else cheapest_backbone((), task)
    side = input_side or default_input_side(facts, task)
    train, _ = split_images(facts)
    low, _ = epoch_range(train, False, task)
    one = attempt_gpu_seconds(facts, chosen, low, side, 1, cost, task)
    return round(MIN_SEARCH_TRIALS * one, 1)


# -- fine-tuning catalogued backbones ----------------------------------------------
# Depthwise-separable families keep an accelerator less busy per MAC than dense
# convolutions (memory-bound); a prior only, corrected by what attempts report.
_DEPTHWISE = ("efficientnet", "mobilenet", "mnasnet", "ghostnet", "lcnet")
# The smallest side a catalogued backbone is fed: ImageNet features degrade fast below.
PRETRAINED_MIN_SIDE = 128
# A linear probe costs one forward pass over train (features, about a third of a
# training epoch) plus the evaluation pass and the fit: priced as half an epoch.
PROBE_EPOCHS = 0.5


def catalog_backbone(entry: PretrainedBackbone, task: Task = "classification") -> Backbone:
    """A catalogued backbone priced like the ladder's: GMACs at 224 px. For detection,
    the whole detector: as measured when the table has its architecture, else the
    backbone's own GMACs plus the largest neck and head."""
    if task == "detection":
        known = measured(entry.architecture, task)
        if known is not None:
            return known
    depthwise = any(family in entry.architecture for family in _DEPTHWISE)
    gmacs = entry.gmacs_at(DEFAULT_SIDE)
    if task == "detection":
        gmacs += DETECTION_NECK_GMACS
    return Backbone(entry.architecture, gmacs, 0.35 if depthwise else 0.8)


def pretrained_sides(entry: PretrainedBackbone) -> tuple[int, ...]:
    """Sides the search feeds a catalogued backbone: its own, and smaller ones down to
    PRETRAINED_MIN_SIDE (cheaper, often as good on small images)."""
    low = min(PRETRAINED_MIN_SIDE, entry.input_size)
    sides = tuple(s for s in INPUT_SIDES if low <= s <= entry.input_size)
    return sides or (entry.input_size,)


def pretrained_side(facts: DatasetFacts, entry: PretrainedBackbone) -> int:
    """The images' native side rounded up to a multiple of 32, within the sides above."""
    sides = pretrained_sides(entry)
    native = min(facts.mean_width, facts.mean_height)
    if native <= 0:
        return sides[-1]
    return next((s for s in sides if s >= native), sides[-1])


def finetune_full_epochs(train_images: int) -> float:
    """Epochs past which fine-tuning a pretrained backbone rarely gains: about 100,000
    images seen, between 8 and 60 epochs (far fewer than from scratch)."""
    return min(60.0, max(8.0, 100_000 / max(1, train_images)))


def finetune_min_epochs(train_images: int) -> float:
    """The shortest fine-tuning whose metric says something about a configuration."""
    return finetune_full_epochs(train_images) / 6


def probe_gpu_seconds(
    facts: DatasetFacts, entry: PretrainedBackbone, cost: CostModel = REFERENCE
) -> float:
    """One linear-probe attempt of a catalogued backbone at its side for these images."""
    side = pretrained_side(facts, entry)
    return attempt_gpu_seconds(facts, catalog_backbone(entry), PROBE_EPOCHS, side, 1, cost)


def finetune_gpu_seconds(
    facts: DatasetFacts, entry: PretrainedBackbone, cost: CostModel = REFERENCE
) -> float:
    """Detection: the shortest useful fine-tuning of a catalogued backbone, at the
    side the search feeds every detector first."""
    train, _ = split_images(facts)
    low, _ = epoch_range(train, True, "detection")
    side = default_input_side(facts, "detection")
    backbone = catalog_backbone(entry, "detection")
    return attempt_gpu_seconds(facts, backbone, low, side, 1, cost, "detection")


def minimum_catalog_search_gpu_seconds(
    facts: DatasetFacts,
    catalog: Sequence[PretrainedBackbone],
    cost: CostModel = REFERENCE,
    task: Task = "classification",
) -> float:
    """With a catalog the cheapest useful search is one linear probe of its cheapest
    backbone: already a model worth having from a few images per class. Detection has
    no probe: one short fine-tuning of its cheapest backbone is that model."""
    if not catalog:
        raise ValueError("an empty catalog has no minimum")
    price = finetune_gpu_seconds if task == "detection" else probe_gpu_seconds
    return round(min(price(facts, entry, cost) for entry in catalog), 1)


# -- trials the user listed ----------------------------------------------------------
def given_trial_gpu_seconds(
    facts: DatasetFacts,
    trial: GivenTrial,
    cost: CostModel = REFERENCE,
    task: Task = "classification",
) -> float:
    """The shortest useful training of one listed trial: its model, side and GPUs, for
    the epochs a useful fine-tune (with weights) or training from scratch needs, or
    fewer when the trial itself runs fewer (its epochs, or its max_steps: it will run
    no more, so the budget need not pay for more). A detection trial without input_size
    trains at the trainer's default side."""
    train, _ = split_images(facts)
    useful, _ = epoch_range(train, trial.pretrained is not None, task)
    epochs = min(useful, planned_epochs(trial, train))
    fallback = DETECTION_DEFAULT_SIDE if task == "detection" else default_input_side(facts)
    side = trial.input_size or fallback
    backbone = find_backbone(trial.model, task)
    return attempt_gpu_seconds(facts, backbone, epochs, side, trial.gpus, cost, task)


def planned_epochs(trial: GivenTrial, train_images: int) -> float:
    """The epochs a listed trial runs, counted as the trainer counts its steps
    (`tailor_trainer.data.total_steps`): its max_steps when set, whatever its epochs;
    else its epochs (the trainer's default when unset)."""
    fields = Hyperparameters.model_fields
    if trial.max_steps is not None and train_images > 0:
        batch = trial.batch_size or int(fields["batch_size"].default)
        return trial.max_steps * batch * trial.gpus / train_images
    return float(trial.epochs if trial.epochs is not None else fields["epochs"].default)


def minimum_given_trials_gpu_seconds(
    facts: DatasetFacts,
    trials: Sequence[GivenTrial],
    cost: CostModel = REFERENCE,
    task: Task = "classification",
) -> float:
    """Listed trials run as given, the budget shared equally: the budget must pay every
    one of them a useful training. Priced as what will run, never as a search."""
    if not trials:
        raise ValueError("no trials to price")
    shortest = [given_trial_gpu_seconds(facts, trial, cost, task) for trial in trials]
    return round(max(shortest) * len(trials), 1)
