import pytest

from tailor_operator.core.planner import (
    InvalidProposal,
    PlannerView,
    SimplePlanner,
    TrialProposal,
    check_proposals,
)
from tailor_operator.core.status import BudgetStatus, StopReason, TrialStatus
from tests.unit.operator.factories import job


def view(trials=(), limit=3600.0, **spec_overrides) -> PlannerView:
    return PlannerView(
        spec=job(**spec_overrides).spec,
        dataset=None,
        trials=list(trials),
        budget=BudgetStatus(limit_gpu_seconds=limit),
        default_model="resnet50",
    )


@pytest.mark.parametrize(
    ("overrides", "models", "gpus"),
    [
        ({}, ["resnet50"], [1]),
        (
            {"search": {"models": ["vit_tiny", "resnet18", "convnext_nano"]}},
            ["vit_tiny", "resnet18", "convnext_nano"],
            [1, 1, 1],
        ),
        (
            {
                "search": {"trials": [{"model": "resnet18", "gpus": 2}, {"model": "vit_small"}]},
                "resources": {"maxGpusPerTrial": 4},
            },
            ["resnet18", "vit_small"],
            [2, 4],
        ),
    ],
)
def test_simple_planner_proposes_the_given_trials_with_equal_shares(
    overrides, models, gpus
) -> None:
    decision = SimplePlanner().decide(view(**overrides))
    assert [p.model for p in decision.new_trials] == models
    assert [p.gpus for p in decision.new_trials] == gpus
    assert [p.name for p in decision.new_trials] == [f"t{i}" for i in range(len(models))]
    assert sum(p.allowance_gpu_seconds for p in decision.new_trials) <= 3600
    assert decision.done == StopReason.CONVERGED


def test_simple_planner_proposes_once() -> None:
    decision = SimplePlanner().decide(view(trials=[TrialStatus(name="t0", model="m")]))
    assert decision.new_trials == ()
    assert decision.done == StopReason.CONVERGED


def test_first_model_is_what_validation_estimates_with() -> None:
    assert (
        SimplePlanner().first_model(job(search={"models": ["vit_tiny"]}).spec, "resnet50")
        == "vit_tiny"
    )


@pytest.mark.parametrize(
    ("proposal", "words"),
    [
        (TrialProposal(name="t0", model="m", gpus=1, allowance_gpu_seconds=1), "must be new"),
        (TrialProposal(name="validate", model="m", gpus=1, allowance_gpu_seconds=1), "must be new"),
        (TrialProposal(name="Bad_Name", model="m", gpus=1, allowance_gpu_seconds=1), "must be new"),
        (TrialProposal(name="t1", model="m", gpus=3, allowance_gpu_seconds=1), "outside 1..2"),
        (TrialProposal(name="t1", model="m", gpus=1, allowance_gpu_seconds=0), "positive"),
    ],
)
def test_bad_proposals_are_refused(proposal, words) -> None:
    with pytest.raises(InvalidProposal, match=words):
        check_proposals([proposal], [TrialStatus(name="t0", model="m")], max_gpus=2)
