"""A budget too small for ASHA to promote: the default fine-tuning trains longer instead
of three fine-tunings each too short to tell apart on a few selection images."""

import pytest

from tailor_contract.cost import CostModel
from tailor_operator.core.search import AutoMLPlanner
from tailor_operator.core.search.decide import SearchRound
from tailor_operator.core.search.space import PROBE_FINETUNE
from tests.unit.operator.test_search_catalog import LITE0, view

# Fine-tuning as dear as on a CPU (bench/fewshot.py's prices until 2026-12-06, which put
# an attempt's fixed costs at 5 s): 100 digits at 224 px cost about 7.6 s an epoch, so a
# few hundred seconds buy a few tens of epochs.
SLOW = CostModel(reference_images_per_second=4.3, floor_seconds_per_image=1.6e-3, fixed_seconds=5.0)


def first_round(seconds: float, catalog: bool = True):
    backbones = (LITE0,) if catalog else ()
    planned = view(seconds=seconds, catalog=backbones, resources={"maxParallelTrials": 4})
    return SearchRound(planned, SLOW, 0.0), AutoMLPlanner(cost=SLOW).decide(planned)


def test_without_promotions_the_default_fine_tuning_takes_two_rungs_and_one_config_the_last():
    search, decision = first_round(240)
    assert search.ladder is not None
    assert search.ladder.top == 0
    assert search.ladder.trials == 3
    probe, default, drawn = decision.new_trials
    rung = search.ladder.rungs[0]
    assert probe.hyperparameters["recipe"] == "linear_probe"
    assert default.hyperparameters["recipe"] == PROBE_FINETUNE
    assert default.allowance_gpu_seconds == pytest.approx(2 * rung, abs=0.002)
    assert drawn.allowance_gpu_seconds == pytest.approx(rung, abs=0.002)
    assert sum(t.allowance_gpu_seconds for t in decision.new_trials) <= 240
    assert float(default.hyperparameters["epochs"]) > 1.8 * search._epochs(
        search.space.default(), 1, rung
    )


@pytest.mark.parametrize("seconds", [200, 240, 300, 400])
def test_a_larger_budget_never_trains_the_default_fine_tuning_much_shorter(seconds):
    """Below a bracket's price the default gets all but the probe's share; just above
    it, it used to get a third (22 epochs at 180 s, 10 at 240 s)."""
    _, below = first_round(180)
    _, above = first_round(seconds)
    epochs = [float(d.new_trials[1].hyperparameters["epochs"]) for d in (below, above)]
    assert epochs[1] >= 0.85 * epochs[0]


def test_a_ladder_that_promotes_gives_the_default_one_rung_like_the_others():
    search, decision = first_round(600)
    assert search.ladder is not None
    assert search.ladder.top == 1
    _, *bracket = decision.new_trials
    assert {t.allowance_gpu_seconds for t in bracket} == {search.ladder.rungs[0]}


def test_training_from_scratch_keeps_equal_rungs():
    search, decision = first_round(240, catalog=False)
    assert search.ladder is not None
    assert {t.allowance_gpu_seconds for t in decision.new_trials} == {search.ladder.rungs[0]}
