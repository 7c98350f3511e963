"""The one cost model the operator and the trainer share: calibrated GPU-seconds of
training a timm backbone on a dataset, and of the cheapest useful search.

Pure arithmetic on DatasetFacts (no torch). The trainer's validation refuses a budget
below `minimum_search_gpu_seconds` (exit 67); the operator's search sizes its rungs
from the same numbers and checks validation's verdict with them, so both sides always
agree. Priors only: the search corrects them with the timings attempts report.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tailor_contract.backbones import PretrainedBackbone
from tailor_contract.documents import DatasetFacts, GivenTrial

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


@dataclass(frozen=True)
class Backbone:
    name: str
    gmacs: float  # forward multiply-accumulates per image at 224 px, in billions
    # Throughput per GMAC relative to a ResNet: tiny models and depthwise convolutions
    # keep a GPU less busy per MAC than dense convolutions do.
    efficiency: float = 1.0
    # Below this many training images the search prefers smaller backbones (from
    # scratch, a large model overfits a small dataset); above max_images it prefers
    # larger ones. Preferences only: budget and spec.search.models decide eligibility.
    min_images: int = 0
    max_images: int | None = None

    @property
    def relative_cost(self) -> float:
        """Effective GMACs: what one image costs this backbone on a GPU."""
        return self.gmacs / self.efficiency


# Forward GMACs measured with torch.utils.flop_counter on timm 1.0 at 224 px: the
# product's ladder for training from scratch, in rising cost.
BACKBONES: tuple[Backbone, ...] = tuple(
    sorted(
        (
            Backbone("resnet10t", 1.10, 1.0, min_images=500),
            Backbone("vit_tiny_patch16_224", 1.25, 0.9, min_images=20_000),
            Backbone("resnet18", 1.81, 1.0, min_images=1_000),
            Backbone("convnext_nano", 2.44, 0.8, min_images=5_000),
            Backbone("resnet50", 4.09, 0.9, min_images=10_000),
            Backbone("vit_small_patch16_224", 4.60, 0.9, min_images=50_000),
            Backbone("convnext_tiny", 4.45, 0.8, min_images=20_000),
            Backbone("vit_base_patch16_224", 17.56, 0.9, min_images=200_000),
        ),
        key=lambda b: b.relative_cost,
    )
)
# timm's unit-test models: tiny random architectures, never a product's answer, so not
# in the ladder; priced here because tests (and spec.search.models) may still name them.
TEST_BACKBONES: tuple[Backbone, ...] = (
    Backbone("test_convnext", 0.061, 0.25, max_images=50_000),
    Backbone("test_vit", 0.088, 0.25, max_images=50_000),
    Backbone("test_resnet", 0.20, 0.5, max_images=50_000),
)
_BY_NAME = {b.name: b for b in (*BACKBONES, *TEST_BACKBONES)}
# A model the table does not know is costed like a ResNet-50 until attempts report.
UNKNOWN_GMACS = 4.09


def find_backbone(name: str) -> Backbone:
    return _BY_NAME.get(name) or Backbone(name, UNKNOWN_GMACS, 0.9)


def split_images(facts: DatasetFacts) -> tuple[int, int]:
    """(training, evaluation) images as the trainer will use them."""
    if facts.eval_images is not None:
        return facts.images, facts.eval_images
    held_out = round(facts.images * DEFAULT_EVAL_FRACTION)
    return facts.images - held_out, held_out


def default_input_side(facts: DatasetFacts) -> int:
    """The native resolution rounded up to a multiple of 32, within 32..224 px."""
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


def epoch_gpu_seconds(
    facts: DatasetFacts,
    backbone: Backbone,
    side: int,
    gpus: int = 1,
    cost: CostModel = REFERENCE,
) -> float:
    """Calibrated GPU-seconds of one epoch over train plus one pass over evaluation."""
    if side <= 0 or gpus <= 0:
        raise ValueError(f"side and gpus must be positive, got side={side}, gpus={gpus}")
    train, evaluation = split_images(facts)
    pixels = (side / DEFAULT_SIDE) ** 2
    compute = pixels * backbone.relative_cost / cost.reference_gmacs
    per_image = max(
        cost.floor_seconds_per_image * (0.5 + 0.5 * pixels),
        compute / cost.reference_images_per_second,
    )
    seconds = train * per_image + evaluation * per_image / cost.eval_speedup
    return seconds * (1 + cost.multi_gpu_overhead * (gpus - 1))


def attempt_gpu_seconds(
    facts: DatasetFacts,
    backbone: Backbone,
    epochs: float,
    side: int,
    gpus: int = 1,
    cost: CostModel = REFERENCE,
) -> float:
    """One attempt: its fixed costs on every GPU plus `epochs` of training."""
    return gpus * cost.fixed_seconds + epochs * epoch_gpu_seconds(facts, backbone, side, gpus, cost)


def cheapest_backbone(allowed: Sequence[str] = ()) -> Backbone:
    """The cheapest backbone a search may use: of the allowed ones, else of the ladder."""
    candidates = [find_backbone(name) for name in allowed] or list(BACKBONES)
    return min(candidates, key=lambda b: (b.relative_cost, b.name))


def minimum_search_gpu_seconds(
    facts: DatasetFacts,
    backbone: str | None = None,
    input_side: int | None = None,
    cost: CostModel = REFERENCE,
) -> float:
    """The cheapest useful search: MIN_SEARCH_TRIALS short trials (min_useful_epochs
    each) of the cheapest backbone, each paying an attempt's fixed costs."""
    chosen = find_backbone(backbone) if backbone else cheapest_backbone()
    side = input_side or default_input_side(facts)
    train, _ = split_images(facts)
    one = attempt_gpu_seconds(facts, chosen, min_useful_epochs(train), side, 1, cost)
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


def catalog_backbone(entry: PretrainedBackbone) -> Backbone:
    """A catalogued backbone priced like the ladder's: GMACs at 224 px."""
    depthwise = any(family in entry.architecture for family in _DEPTHWISE)
    return Backbone(entry.architecture, entry.gmacs_at(DEFAULT_SIDE), 0.35 if depthwise else 0.8)


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


def minimum_catalog_search_gpu_seconds(
    facts: DatasetFacts, catalog: Sequence[PretrainedBackbone], cost: CostModel = REFERENCE
) -> float:
    """With a catalog the cheapest useful search is one linear probe of its cheapest
    backbone: already a model worth having from a few images per class."""
    if not catalog:
        raise ValueError("an empty catalog has no minimum")
    return round(min(probe_gpu_seconds(facts, entry, cost) for entry in catalog), 1)


# -- trials the user listed ----------------------------------------------------------
def given_trial_gpu_seconds(
    facts: DatasetFacts, trial: GivenTrial, cost: CostModel = REFERENCE
) -> float:
    """The shortest useful training of one listed trial: its model, side and GPUs, for
    the epochs a useful fine-tune (with weights) or training from scratch needs."""
    train, _ = split_images(facts)
    epochs = finetune_min_epochs(train) if trial.pretrained else min_useful_epochs(train)
    side = trial.input_size or default_input_side(facts)
    backbone = find_backbone(trial.model)
    return attempt_gpu_seconds(facts, backbone, epochs, side, trial.gpus, cost)


def minimum_given_trials_gpu_seconds(
    facts: DatasetFacts, trials: Sequence[GivenTrial], cost: CostModel = REFERENCE
) -> float:
    """Listed trials run as given, the budget shared equally: the budget must pay every
    one of them a useful training. Priced as what will run, never as a search."""
    if not trials:
        raise ValueError("no trials to price")
    shortest = [given_trial_gpu_seconds(facts, trial, cost) for trial in trials]
    return round(max(shortest) * len(trials), 1)
