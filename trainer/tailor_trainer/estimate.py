"""A first feasibility estimate: the calibrated GPU-seconds of the cheapest useful search.

The cheapest useful search is one short trial of a small model: a few epochs over the
training split and one pass over the evaluation split on the reference GPU (factor 1.0),
plus the fixed cost of starting a pod. The AutoML work will refine these constants;
they live here, alone, so that refinement touches nothing else.
"""

from dataclasses import dataclass

from tailor_contract import DatasetFacts


@dataclass(frozen=True)
class CostModel:
    # Training images per second of a ResNet-18-class model at 224 px, bf16, on the
    # reference GPU; evaluation runs about three times faster (no backward pass).
    reference_images_per_second: float = 2500.0
    reference_side: int = 224
    min_epochs: float = 3.0
    eval_speedup: float = 3.0
    # Pod start, data cache warm-up, checkpoint and export.
    fixed_seconds: float = 120.0


def estimate_min_gpu_seconds(
    facts: DatasetFacts, input_side: int = 224, model: CostModel | None = None
) -> float:
    cost = model or CostModel()
    # Convolution cost grows with pixel count; small datasets still pay the fixed cost.
    pixel_ratio = (input_side / cost.reference_side) ** 2
    speed = cost.reference_images_per_second / pixel_ratio
    train_images = facts.images
    eval_images = facts.eval_images or 0
    training = cost.min_epochs * train_images / speed
    evaluation = cost.min_epochs * eval_images / (speed * cost.eval_speedup)
    return round(cost.fixed_seconds + training + evaluation, 1)
