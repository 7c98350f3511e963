"""The operator/trainer contract: exit codes and the termination message."""

import json

import pytest
from pydantic import ValidationError

from tailor_contract import TERMINATION_MESSAGE_LIMIT, AttemptResult, ExitCode, describe_exit


def test_permanent_failures_are_exactly_the_ones_a_retry_would_repeat():
    permanent = {code for code in ExitCode if code.is_permanent_failure}
    assert permanent == {
        ExitCode.DATASET_CORRUPT,
        ExitCode.DATASET_NOT_FOUND,
        ExitCode.BUDGET_NOT_ENOUGH,
        ExitCode.DIVERGED,
        ExitCode.EXPORT_REFUSED,
        ExitCode.INVALID_CONFIG,
    }


def test_exit_codes_avoid_the_shell_and_signal_ranges():
    assert all(code < 126 for code in ExitCode)
    assert len({int(code) for code in ExitCode}) == len(ExitCode)


@pytest.mark.parametrize(
    ("code", "name"),
    [(0, "SUCCESS"), (75, "RETRYABLE"), (137, "KILLED_BY_SIGNAL_9"), (1, "UNEXPLAINED_1")],
)
def test_describe_exit_names_every_code(code, name):
    assert describe_exit(code) == name


def test_termination_message_fits_the_kubernetes_limit_however_many_problems():
    result = AttemptResult(
        exit="DATASET_CORRUPT",
        reason="x" * 3000,
        problems=[f"image {i}: cannot be decoded as PNG or JPEG" for i in range(500)],
    )
    message = result.to_termination_message()
    assert len(message.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed = AttemptResult.model_validate_json(message)
    assert parsed.exit == "DATASET_CORRUPT"
    assert parsed.reason.startswith("xxx")


def test_a_long_list_of_unusable_backbones_still_fits_and_keeps_every_name():
    unusable = {f"backbone-{i}": "weights unreadable: " + "e" * 400 for i in range(12)}
    result = AttemptResult(exit="SUCCESS", verified_backbones=["good"], unusable_backbones=unusable)
    message = result.to_termination_message()
    assert len(message.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed = AttemptResult.model_validate_json(message)
    assert set(parsed.unusable_backbones) == set(unusable)
    assert parsed.verified_backbones == ["good"]
    assert all(why.startswith("weights unreadable") for why in parsed.unusable_backbones.values())


def test_small_results_round_trip_unchanged():
    result = AttemptResult(exit="SUCCESS", metrics={"top1": 0.93}, steps=120, images_seen=3840)
    assert AttemptResult.model_validate_json(result.to_termination_message()) == result
    assert json.loads(result.to_termination_message())["metrics"] == {"top1": 0.93}


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        AttemptResult.model_validate({"exit": "SUCCESS", "stpes": 3})


def test_the_spec_accepts_exactly_the_tasks_the_trainer_runs():
    from typing import get_args

    from tailor_contract import TRAINABLE_TASKS
    from tailor_operator.core.spec import Task

    assert set(get_args(Task)) == set(TRAINABLE_TASKS)


def test_selection_orders_by_the_metric_then_the_lower_log_loss():
    from tailor_contract.metrics import Selection

    exact = Selection.of("classification", "top1_accuracy", None)  # split size unknown
    assert exact.best([{"top1_accuracy": 0.85}, {"top1_accuracy": 0.9, "log_loss": 2.0}]) == 1
    tie = [{"top1_accuracy": 0.9, "log_loss": 0.5}, {"top1_accuracy": 0.9, "log_loss": 0.3}]
    assert exact.best(tie) == 1
    assert exact.best([{"top1_accuracy": 0.9}, {"top1_accuracy": 0.9, "log_loss": 9.0}]) == 1
    assert exact.best([{"top1_accuracy": 0.9}, {"top1_accuracy": 0.9}]) == 0  # earliest
    ece = Selection.of("classification", "calibration_ece", 20)
    assert ece.best([{"calibration_ece": 0.2}, {"calibration_ece": 0.1}]) == 1


def test_a_difference_the_evaluation_split_cannot_resolve_goes_to_the_lower_log_loss():
    from tailor_contract.metrics import Selection, resolution

    # MNIST seed 2 of bench/fewshot.py: one image of 20 apart, the 0.90 checkpoint was
    # mid-way through the fine-tuning's disruption (held-out accuracy 0.68).
    noisy = {"top1_accuracy": 0.90, "log_loss": 0.84}
    settled = {"top1_accuracy": 0.85, "log_loss": 0.52}
    assert resolution("top1_accuracy", 0.90, 0.85, 20) > 0.05
    assert Selection.of("classification", "top1_accuracy", 20).best([noisy, settled]) == 1
    # The same difference on 2,000 images is real: the metric decides.
    assert Selection.of("classification", "top1_accuracy", 2000).best([noisy, settled]) == 0
    # Far apart on 20 images too (0.90 against 0.60): the metric decides.
    poor = {"top1_accuracy": 0.60, "log_loss": 0.1}
    assert Selection.of("classification", "top1_accuracy", 20).best([noisy, poor]) == 0
    # Metrics that are not a fraction of the images tie only exactly.
    assert resolution("f1_macro", 0.9, 0.85, 20) == 0.0


def test_close_calls_are_judged_against_the_top_not_a_chain_of_neighbours():
    from tailor_contract.metrics import Selection

    rule = Selection.of("classification", "top1_accuracy", 20)
    # 0.80 is within one standard error of 0.87, and 0.87 of 0.95, but 0.80 is not of
    # 0.95: the lowest loss of the three never wins.
    candidates = [
        {"top1_accuracy": 0.95, "log_loss": 0.6},
        {"top1_accuracy": 0.87, "log_loss": 0.5},
        {"top1_accuracy": 0.80, "log_loss": 0.1},
    ]
    assert rule.best(candidates) == 1
    assert rule.order(candidates) == [1, 0, 2]
