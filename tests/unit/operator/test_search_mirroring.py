"""Training mirrors images only where mirroring keeps the class: validation's pixel
reference scored on the mirror images says where it does not."""

import pytest

from tailor_operator.core.search import AutoMLPlanner
from tailor_operator.core.search.mirroring import mirroring_changes_class
from tests.unit.operator.test_search_catalog import (
    PROBE_HP,
    TUNE_HP,
    data,
    scored,
    view,
)


def scores(given: float | None, mirrored: float | None, evaluation: int = 20):
    return data(images=100).model_copy(
        update={
            "eval_images": evaluation,
            "pixel_reference": given,
            "mirrored_pixel_reference": mirrored,
        }
    )


@pytest.mark.parametrize(
    ("given", "mirrored", "evaluation", "changes"),
    [
        # Digits: 0.90 on the scans, 0.35 on their mirror images (20 scored).
        (0.90, 0.35, 20, True),
        # Photos: a few points either way is what mirroring costs a linear fit.
        (0.60, 0.55, 20, False),
        (0.60, 0.65, 20, False),
        # On 5,000 images a fall of 0.06 is no noise, but too small to mean a new class.
        (0.90, 0.84, 5000, False),
        (0.90, 0.75, 5000, True),
        # 0.5 against 0.3 on 10 images is within two standard errors (0.21 each).
        (0.50, 0.30, 10, False),
        (0.50, 0.30, 200, True),
        # Unknown (multilabel, detection, an older validation): flips as before.
        (0.90, None, 20, False),
        (None, 0.10, 20, False),
    ],
)
def test_mirroring_changes_the_class_only_where_the_mirror_images_score_clearly_lower(
    given, mirrored, evaluation, changes
):
    assert mirroring_changes_class(scores(given, mirrored, evaluation).facts()) is changes


def test_every_trial_of_a_search_on_digits_trains_without_flips():
    digits = scores(0.90, 0.35)
    (t0,) = AutoMLPlanner().decide(view(seconds=3600, summary=digits)).new_trials
    done = [scored("t0", 0.7, PROBE_HP, "efficientnet-lite0")]
    (t1,) = AutoMLPlanner().decide(view(done, seconds=3600, summary=digits)).new_trials
    # Fine-tunings trailing the pixel reference bring scratch training in: also no flips.
    trailing = [*done, scored("t1", 0.85, TUNE_HP, "efficientnet-lite0")]
    (t2,) = AutoMLPlanner().decide(view(trailing, seconds=3600, summary=digits)).new_trials
    assert (t0.hyperparameters["recipe"], t1.hyperparameters["recipe"]) == (
        "linear_probe",
        "probe_finetune",
    )
    assert t2.backbone is None
    assert [t.hyperparameters.get("hflip") for t in (t0, t1, t2)] == [0.0, 0.0, 0.0]
    # Photos: the trainer's default flips, nothing written.
    photos = scores(0.60, 0.55)
    (p0,) = AutoMLPlanner().decide(view(seconds=3600, summary=photos)).new_trials
    assert "hflip" not in p0.hyperparameters
