"""The shared cost model, its corrections from reported timings, the rungs it sizes,
and the feasibility check validation makes with it."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor_contract import AttemptResult, DatasetFacts
from tailor_contract.cost import (
    BACKBONES,
    MIN_SEARCH_TRIALS,
    cheapest_backbone,
    default_input_side,
    epoch_gpu_seconds,
    find_backbone,
    minimum_search_gpu_seconds,
)
from tailor_operator.core.search import AutoMLPlanner
from tailor_operator.core.search.cost import CostEstimator, Observation
from tailor_operator.core.search.rungs import per_configuration, plan_ladder
from tailor_operator.core.status import DatasetSummary, JobPhase
from tailor_trainer.estimate import estimate_min_gpu_seconds
from tests.unit.operator.factories import job
from tests.unit.operator.sim import Sim

sizes = st.integers(1, 3_000_000)
sides = st.floats(8, 2000)


def facts(images: int, side: float = 160.0, eval_images: int | None = None) -> DatasetFacts:
    return DatasetFacts(
        images=images,
        classes=10,
        mean_width=side,
        mean_height=side,
        digest="d",
        eval_images=eval_images,
    )


@settings(max_examples=200)
@given(small=sizes, more=sizes, side=sides)
def test_the_feasibility_estimate_never_falls_as_the_dataset_grows(small, more, side):
    larger = small + more
    assert minimum_search_gpu_seconds(facts(larger, side)) >= minimum_search_gpu_seconds(
        facts(small, side)
    )


@settings(max_examples=100)
@given(images=sizes, side=sides, model=st.sampled_from([b.name for b in BACKBONES]))
def test_trainer_and_operator_compute_the_same_minimum(images, side, model):
    """One cost model: the trainer's validation and the operator's planner agree."""
    reported = facts(images, side, eval_images=images // 5)
    summary = DatasetSummary.of(reported)  # what the status keeps of validation's report
    spec = job(search={"models": [model, "vit_base_patch16_224"]}).spec
    planner = AutoMLPlanner()
    named = planner.first_model(spec, "resnet50")
    assert named == model  # the cheaper of the two allowed
    assert summary.facts() == reported
    assert planner.minimum_gpu_seconds(spec, summary, "resnet50") == estimate_min_gpu_seconds(
        reported, None, named
    )
    plain = job().spec
    assert planner.minimum_gpu_seconds(plain, summary, "resnet50") == estimate_min_gpu_seconds(
        reported
    )


def test_larger_models_and_inputs_cost_more_per_epoch():
    data = facts(50_000)
    costs = [epoch_gpu_seconds(data, b, 224) for b in BACKBONES]
    assert costs == sorted(costs)
    assert epoch_gpu_seconds(data, find_backbone("resnet50"), 448) > epoch_gpu_seconds(
        data, find_backbone("resnet50"), 224
    )
    # Two GPUs share an epoch: its GPU-seconds grow only by the data-parallel losses.
    one = epoch_gpu_seconds(data, find_backbone("resnet50"), 224, 1)
    assert one < epoch_gpu_seconds(data, find_backbone("resnet50"), 224, 2) < 1.2 * one
    assert cheapest_backbone().name == BACKBONES[0].name
    assert cheapest_backbone(["resnet50", "resnet18"]).name == "resnet18"
    assert find_backbone("some_new_net").gmacs > 0  # unknown models get a prior too


def test_every_backbone_in_the_ladder_is_a_timm_model():
    timm = pytest.importorskip("timm")
    assert all(timm.is_model(b.name) for b in BACKBONES)


@pytest.mark.parametrize(("native", "side"), [(8, 32), (32, 32), (100, 128), (500, 224), (0, 224)])
def test_the_input_side_follows_the_images(native, side):
    assert default_input_side(facts(100, native)) == side


def test_the_estimator_learns_overhead_and_speed_from_reported_timings():
    data = facts(20_000)
    prior = CostEstimator(data)
    # The truth: fixed costs half the prior's, resnet18 epochs 2.5 times dearer.
    epoch = 2.5 * prior.epoch_seconds("resnet18", 224, 1)
    seen = [
        Observation("resnet18", 224, 1, epochs, 60.0 + epochs * epoch)
        for epochs in (1.0, 3.0, 8.0, 20.0)
    ]
    fitted = CostEstimator(data, seen=seen)
    for epochs in (2.0, 30.0):
        truth = 60.0 + epochs * epoch
        assert fitted.attempt_seconds("resnet18", 224, 1, epochs) == pytest.approx(truth, rel=0.2)
        assert abs(prior.attempt_seconds("resnet18", 224, 1, epochs) - truth) > 0.25 * truth
    # A backbone never seen borrows the correction of the others.
    assert fitted.factor("resnet50") > 1.5
    planned = fitted.epochs_for("resnet18", 224, 1, 1000.0)
    assert fitted.attempt_seconds("resnet18", 224, 1, planned) <= 1000.0


@settings(max_examples=300)
@given(
    budget=st.floats(1.0, 1e7),
    useful=st.floats(1.0, 5e4),
    full=st.floats(1.0, 1e6),
    overhead=st.floats(0.0, 600.0),
)
def test_the_planned_rungs_never_cost_more_than_the_budget(budget, useful, full, overhead):
    ladder = plan_ladder(budget, useful, full, overhead)
    if budget < MIN_SEARCH_TRIALS * useful:
        assert ladder is None
        return
    assert ladder is not None
    assert ladder.trials >= MIN_SEARCH_TRIALS
    assert list(ladder.rungs) == sorted(ladder.rungs)
    assert ladder.rungs[0] >= min(useful, budget / MIN_SEARCH_TRIALS) - 1e-3
    # Every rung-0 configuration plus every promotion ASHA may make, at full allowances.
    worst = ladder.trials * ladder.rungs[0] * per_configuration(ladder.top)
    assert worst <= budget + 1e-6


def test_validation_refuses_a_budget_below_the_cheapest_useful_search():
    data = facts(200_000, 500)
    minimum = minimum_search_gpu_seconds(data, cheapest_backbone().name)
    hours = f"{0.9 * minimum / 3600:.4f}"
    sim = Sim(planner=AutoMLPlanner(), budget={"gpuHours": hours})
    sim.step(0)
    (name,) = sim.pod_names("validate")
    assert sim.config(name)["model"] == cheapest_backbone().name
    sim.run(name, "gpu-a", 1)
    message = AttemptResult(exit="SUCCESS", dataset=data).to_termination_message()
    sim.finish(name, 0, 5, message=message)
    sim.step(6)
    status = sim.status
    assert (status.phase, status.reason) == (JobPhase.FAILED, "BudgetNotEnough")
    assert status.validation.estimated_min_gpu_seconds == minimum
    assert "estimated minimum" in status.message
    assert f"{minimum / 3600:.2f} GPU-hours" in status.message
    assert status.trials == []
    assert sim.pod_names("t0") == []  # no GPU was touched
