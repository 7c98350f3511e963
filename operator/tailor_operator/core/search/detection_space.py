"""Where a detection search's space differs from classification's: its batches, its
sides (tailor_contract.detection_cost) and when training from scratch is worth trying
beside a catalogued backbone.
"""

from tailor_contract import DatasetFacts
from tailor_contract.cost import split_images
from tailor_contract.detection_cost import detection_default_side, detection_sides

# Detection steps hold a few large images each: batches of 8 to 32.
DETECTION_BATCH_SIZES = (8, 16, 32)
DETECTION_DEFAULT_BATCH = 16
# Steps per epoch a batch size must leave, at least.
MIN_STEPS_PER_EPOCH = 4
# Training images from which a detector from scratch joins a search that has a
# catalogued backbone: below, the pretrained features win (COCO-sized data is where
# from-scratch detectors catch up, with a longer schedule).
DETECTION_SCRATCH_MIN_IMAGES = 20_000


def detection_batches(train_images: int) -> tuple[tuple[int, ...], int]:
    """(batch sizes the search tries, the default one)."""
    fitting = tuple(
        b for b in DETECTION_BATCH_SIZES if b * MIN_STEPS_PER_EPOCH <= max(train_images, 32)
    )
    default = max(b for b in fitting if b <= DETECTION_DEFAULT_BATCH)
    return fitting, default


def detection_scratch_worthwhile(facts: DatasetFacts) -> bool:
    train, _ = split_images(facts)
    return train >= DETECTION_SCRATCH_MIN_IMAGES


def detection_side_range(facts: DatasetFacts) -> tuple[tuple[int, ...], int]:
    """(sides the search tries, the default one)."""
    return detection_sides(facts), detection_default_side(facts)
