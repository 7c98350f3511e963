"""`tailor-train validate` prices a detection job as the operator's detection search runs
it (tailor_contract.cost with the task), not as classification: a budget that would
classify the images but not detect in them is refused with the detection estimate."""

import json
from pathlib import Path

from tailor_contract import ExitCode, GivenTrial
from tailor_contract.cost import minimum_given_trials_gpu_seconds, minimum_search_gpu_seconds
from tailor_trainer.storage import Storage
from tailor_trainer.validate import ValidateOptions, ValidationReport, validate
from tests.trainer.detection_data import digits_document


def _validate(folder: Path, budget: float | None, **options: object) -> ValidationReport:
    for name, images, seed in (("train", 12, 0), ("eval", 6, 1)):
        document = digits_document(folder, name, images, seed=seed)
        (folder / f"{name}.json").write_text(json.dumps(document))
    return validate(
        Storage(),
        ValidateOptions(
            annotations=str(folder / "train.json"),
            evaluation=str(folder / "eval.json"),
            budget_gpu_seconds=budget,
            workers=2,
            **options,  # type: ignore[arg-type]
        ),
    )


def test_a_detection_budget_is_checked_at_detection_prices(tmp_path):
    report = _validate(tmp_path, None, task="detection")
    facts = report.result.dataset
    assert facts is not None
    detection = minimum_search_gpu_seconds(facts, task="detection")
    classification = minimum_search_gpu_seconds(facts)
    assert report.result.estimated_min_gpu_seconds == detection > classification
    between = (detection + classification) / 2
    refused = _validate(tmp_path, between, task="detection")
    assert refused.code == ExitCode.BUDGET_NOT_ENOUGH
    assert f"estimated minimum of {detection:g} GPU-seconds" in refused.result.reason


def test_listed_detection_trials_are_priced_at_the_trainers_side(tmp_path):
    listed = (GivenTrial(model="resnet50"),)
    report = _validate(tmp_path, None, task="detection", given_trials=listed)
    facts = report.result.dataset
    assert facts is not None
    expected = minimum_given_trials_gpu_seconds(facts, listed, task="detection")
    assert report.result.estimated_min_gpu_seconds == expected
    assert expected > minimum_given_trials_gpu_seconds(facts, listed)
