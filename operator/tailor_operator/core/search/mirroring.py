"""Whether training may mirror images left to right: not where mirroring changes what
they show.

Flipping is the cheapest augmentation for photos (a dog mirrored is a dog), and on
digits it teaches the model shapes it will never be shown (a mirrored 2 is no digit;
a mirrored 3 is none either). Validation scores its pixel reference (a logistic
regression on 16 x 16 thumbnails) on the evaluation images and on their mirror images:
where the second falls clearly below the first, the pixels' layout left to right is
part of the class, and every trial the search proposes trains with `hflip` 0.
"""

import math

from tailor_contract import DatasetFacts
from tailor_contract.cost import split_images
from tailor_operator.core.spec import Scalar

# The least fall that counts, however many evaluation images: a few points is what
# photos' mirror images cost a linear model on their pixels.
MIN_FALL = 0.1
# Standard errors the fall must exceed: on 20 images a fall is noise unless large.
NOISE_ERRORS = 2.0


def mirroring_changes_class(facts: DatasetFacts) -> bool:
    """Whether the pixel reference scored the mirror images clearly lower: by more than
    MIN_FALL and more than NOISE_ERRORS standard errors of the difference of two
    accuracies on the evaluation images. False when either score is unknown."""
    given, mirrored = facts.pixel_reference, facts.mirrored_pixel_reference
    if given is None or mirrored is None:
        return False
    _, scored = split_images(facts)
    if scored <= 0:
        return False
    error = math.sqrt((given * (1 - given) + mirrored * (1 - mirrored)) / scored)
    return given - mirrored > max(MIN_FALL, NOISE_ERRORS * error)


def mirroring_hyperparameters(facts: DatasetFacts) -> dict[str, Scalar]:
    """What every proposed trial's hyperparameters add: no flips where mirroring
    changes the class, else nothing (the trainer's default flips half the images)."""
    return {"hflip": 0.0} if mirroring_changes_class(facts) else {}
