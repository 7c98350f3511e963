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

from tailor_contract.documents import DatasetFacts

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


# Forward GMACs measured with torch.utils.flop_counter on timm 1.0 at 224 px; a ladder
# of rising cost, from timm's test models (for a few images and small budgets) up.
BACKBONES: tuple[Backbone, ...] = tuple(
    sorted(
        (
            Backbone("test_convnext", 0.061, 0.25, max_images=50_000),
            Backbone("test_vit", 0.088, 0.25, max_images=50_000),
            Backbone("test_resnet", 0.20, 0.5, max_images=50_000),
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
_BY_NAME = {b.name: b for b in BACKBONES}
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
