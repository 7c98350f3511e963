"""How detection is sized, where it differs from classification: input sides, epochs,
and how often an attempt evaluates.

Detection letterboxes the longer side to S, so the sides follow the images' longer
side. Photos get 384-1024 px in steps of 128 (512 by default, the trainer's own);
images smaller than 384 px are fed at their own size rounded up to 32, up to twice it
(upscaling a small image adds pixels to compute, little detail).
"""

import math

from tailor_contract.documents import DatasetFacts

DETECTION_SIDES = (384, 512, 640, 768, 896, 1024)
DETECTION_DEFAULT_SIDE = 512
SMALL_MIN_SIDE = 64
# Evaluation sees at most this share of the images training sees: past it the search
# evaluates every few epochs (COCO evaluation runs on the CPU while the GPU waits).
EVAL_IMAGES_SHARE = 0.5
# Below this many training images a detector trained from scratch learns little: the
# trainer logs it, the operator warns (condition Pretrained=False and an Event).
SCRATCH_FEW_IMAGES = 1000


def native_side(facts: DatasetFacts) -> float:
    """The longer side the letterbox scales to S."""
    return max(facts.mean_width, facts.mean_height)


def detection_default_side(facts: DatasetFacts) -> int:
    native = native_side(facts)
    if native <= 0:
        return DETECTION_DEFAULT_SIDE
    if native < DETECTION_SIDES[0]:
        return max(SMALL_MIN_SIDE, 32 * math.ceil(native / 32))
    return min(DETECTION_DEFAULT_SIDE, 128 * math.ceil(native / 128))


def detection_sides(facts: DatasetFacts) -> tuple[int, ...]:
    """The sides the search chooses from, the default among them, smallest first."""
    default = detection_default_side(facts)
    if default < DETECTION_SIDES[0]:
        return tuple(range(default, min(DETECTION_SIDES[0], 2 * default) + 1, 32))
    # Never far above the images' own resolution.
    top = max(default, 128 * math.ceil(native_side(facts) / 128))
    return tuple(s for s in DETECTION_SIDES if s <= top)


def detection_full_epochs(train_images: int) -> float:
    """From scratch: about 1.5 million images seen, 36 to 300 epochs (COCO trains a
    detector from scratch for about three times its pretrained schedule)."""
    return min(300.0, max(36.0, 1_500_000 / max(1, train_images)))


def detection_min_epochs(train_images: int) -> float:
    return max(2.0, detection_full_epochs(train_images) / 60)


def detection_finetune_full_epochs(train_images: int) -> float:
    """From a pretrained backbone: about 150,000 images seen, 12 (COCO's 1x schedule)
    to 150 epochs."""
    return min(150.0, max(12.0, 150_000 / max(1, train_images)))


def detection_finetune_min_epochs(train_images: int) -> float:
    return detection_finetune_full_epochs(train_images) / 6


def detection_eval_every(train_images: int, eval_images: int) -> float:
    """Epochs between evaluations: each epoch while the evaluation split is at most
    EVAL_IMAGES_SHARE of training's, less often past it."""
    if train_images <= 0:
        return 1.0
    return float(max(1, math.ceil(eval_images / (EVAL_IMAGES_SHARE * train_images))))
