"""Validation checks the job's own configuration before any GPU (issue 12, holes 2 and 7):
the models the spec names exist, listed weights are readable, and a budget is checked
against the listed trials, not against a search that will not run."""

from typing import Any

import pytest

from tailor_contract import (
    AttemptResult,
    DatasetFacts,
    DatasetRef,
    ExitCode,
    GivenTrial,
    TrialConfig,
)
from tailor_contract.cost import (
    epoch_range,
    minimum_given_trials_gpu_seconds,
    minimum_search_gpu_seconds,
)
from tailor_trainer.cli import main
from tailor_trainer.storage import Storage
from tailor_trainer.validate import ValidateOptions, validate


def _check(annotations: str, **options):
    return validate(Storage(), ValidateOptions(annotations=annotations, **options))


def test_unknown_models_and_unreadable_weights_are_named_by_their_spec_field(
    local_dataset, tmp_path
):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    report = _check(
        local_dataset.annotations,
        candidate_models=("resnet18", "resnet5O"),
        given_trials=(
            GivenTrial(model="resnet18", pretrained=str(weights)),
            GivenTrial(model="convnext_nano_typo", pretrained=str(tmp_path / "missing")),
        ),
    )
    assert report.code == ExitCode.INVALID_CONFIG
    assert report.result.problems == [
        "spec.search.models[1]: timm has no model named 'resnet5O'",
        "spec.search.trials[1].model: timm has no model named 'convnext_nano_typo'",
        f"spec.search.trials[1].pretrained: no weights at {tmp_path / 'missing'}",
    ]
    assert report.result.reason.startswith("invalid configuration: spec.search.models[1]")


def test_models_that_exist_pass(local_dataset):
    report = _check(local_dataset.annotations, candidate_models=("resnet18", "test_vit"))
    assert report.code == ExitCode.SUCCESS, report.result.reason


def test_the_validation_pod_exits_invalid_config_from_the_operators_config(
    local_dataset, tmp_path, termination_log
):
    config = TrialConfig(
        job="team-a/insects",
        job_uid="0b7c6a52-2f0e-4f5e-9c39-5d6f0b1c2d3e",
        trial="validate",
        attempt=1,
        task="classification",
        dataset=DatasetRef(train=local_dataset.annotations),
        model="resnet18",
        allowance_gpu_seconds=3600,
        calibration_factor=1.0,
        gpus=0,
        output=str(tmp_path / "out") + "/",
        given_trials=[GivenTrial(model="resnet_50")],
    )
    path = tmp_path / "trial.json"
    path.write_text(config.model_dump_json())
    assert main(["validate", "--config", str(path)]) == ExitCode.INVALID_CONFIG
    message = AttemptResult.model_validate_json(termination_log.read_text())
    assert message.exit == "INVALID_CONFIG"
    assert "spec.search.trials[0].model: timm has no model named 'resnet_50'" in message.reason


def test_listed_trials_are_priced_as_they_will_run_not_as_a_search():
    """The issue's case: 1,000 images, one ResNet-50 trial, 0.1 GPU-hours."""
    facts = DatasetFacts(images=1000, classes=10, mean_width=224, mean_height=224, digest="d")
    one = minimum_given_trials_gpu_seconds(facts, [GivenTrial(model="resnet50")])
    search = minimum_search_gpu_seconds(facts, "resnet50")
    assert one < 0.1 * 3600 < search
    two = minimum_given_trials_gpu_seconds(
        facts, [GivenTrial(model="resnet50"), GivenTrial(model="resnet18")]
    )
    assert two == pytest.approx(2 * one, rel=1e-3)  # the budget is shared equally


def test_a_budget_that_pays_the_listed_trials_passes_validation(local_dataset):
    given = (GivenTrial(model="resnet50"),)
    estimate = _check(local_dataset.annotations, given_trials=given).result
    assert estimate.estimated_min_gpu_seconds is not None
    search = _check(local_dataset.annotations, model="resnet50").result.estimated_min_gpu_seconds
    assert search is not None
    assert estimate.estimated_min_gpu_seconds < search
    budget = estimate.estimated_min_gpu_seconds * 1.01
    report = _check(local_dataset.annotations, given_trials=given, budget_gpu_seconds=budget)
    assert report.code == ExitCode.SUCCESS
    short = _check(local_dataset.annotations, given_trials=given, budget_gpu_seconds=budget / 2)
    assert short.code == ExitCode.BUDGET_NOT_ENOUGH
    assert "the 1 listed trials" in short.result.reason


def test_a_listed_trial_that_asks_for_less_than_a_useful_training_is_priced_at_what_it_asks():
    """A user's quick trial (few epochs, or max_steps) runs no longer than that: a
    budget that pays for it is enough, though it would not pay for a useful training."""
    facts = DatasetFacts(images=20000, classes=10, mean_width=224, mean_height=224, digest="d")
    train = 16000  # a fifth held out to evaluate on

    def price(**asked: Any) -> float:
        return minimum_given_trials_gpu_seconds(facts, [GivenTrial(model="resnet50", **asked)])

    useful_epochs, _ = epoch_range(train, pretrained=False)
    useful = price()
    fixed = price(max_steps=1, batch_size=1)  # one image: the attempt's fixed costs
    assert price(epochs=100) == useful  # asking for more: the floor is a useful training
    one_epoch = price(epochs=1)
    assert one_epoch - fixed == pytest.approx((useful - fixed) / useful_epochs, rel=0.01)
    # 50 steps of 64 images: a fifth of an epoch; on 2 GPUs, 25 steps see as many images
    assert price(max_steps=50, batch_size=64) - fixed == pytest.approx(
        0.2 * (one_epoch - fixed), rel=0.02
    )
    assert price(max_steps=25, batch_size=64, gpus=2) > price(max_steps=50, batch_size=64)
    # max_steps decides the run, as in the trainer, even past its epochs: 1,000 steps of
    # 64 images are 4 epochs, more than a useful training
    assert price(epochs=1, max_steps=1000, batch_size=64) == useful
