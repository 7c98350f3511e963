"""`run`: a trial attempt learns, stops at its allowance, detects divergence, resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tailor_contract import AttemptResult, ExitCode
from tailor_trainer.cli import main
from tailor_trainer.coco import ClassTask
from tailor_trainer.schedule_fit import ScheduleFit
from tailor_trainer.storage import Storage
from tailor_trainer.synthetic import SyntheticSpec, write

JOB_UID = "0b7c6a52-uid-of-team-a-insects"
FAST = {"batch_size": 16, "input_size": 32, "workers": 0, "augmentation": 0.0, "lr": 3e-3}


def _dataset(root: Path, task: ClassTask = "classification", classes: int = 4) -> tuple[str, str]:
    storage = Storage()
    train = write(storage, str(root), SyntheticSpec(classes, 24, task=task, seed=0), "train.json")
    evaluation = write(
        storage, str(root), SyntheticSpec(classes, 8, task=task, seed=1), "eval.json"
    )
    return train, evaluation


def _config(tmp_path: Path, train: str, evaluation: str | None = None, **overrides) -> Path:
    hyperparameters = {**FAST, "epochs": 8, **overrides.pop("hyperparameters", {})}
    config = {
        "job": "team-a/insects",
        "job_uid": JOB_UID,
        "trial": "trial-0",
        "attempt": 1,
        "task": "classification",
        "dataset": {"train": train, "evaluation": evaluation},
        "model": "test_resnet",
        "hyperparameters": hyperparameters,
        "allowance_gpu_seconds": 600,
        "calibration_factor": 1.0,
        "gpus": 0,
        "output": str(tmp_path / "out"),
        **overrides,
    }
    path = tmp_path / f"config-{config['attempt']}.json"
    path.write_text(json.dumps(config))
    return path


def _run(config: Path, termination_log: Path) -> tuple[int, AttemptResult]:
    code = main(["run", "--config", str(config)])
    return code, AttemptResult.model_validate_json(termination_log.read_text())


def test_a_run_learns_a_separable_dataset(tmp_path, termination_log):
    train, evaluation = _dataset(tmp_path / "data")
    code, result = _run(_config(tmp_path, train, evaluation), termination_log)

    assert code == ExitCode.SUCCESS, result.reason
    assert result.stopped_by == "completed"
    assert result.steps == 8 * (96 // 16)  # epochs x batches per epoch
    assert result.images_seen == result.steps * 16
    assert result.epochs == 8
    assert result.metrics["top1_accuracy"] >= 0.8  # chance is 0.25
    document = json.loads((tmp_path / "out" / "results" / "attempt-1.json").read_text())
    matrix = document["confusion_matrix"]
    assert sum(matrix[i][i] for i in range(4)) == round(result.metrics["top1_accuracy"] * 32)
    assert document["config"]["seeds"]["trial"] == 0
    assert (tmp_path / "out" / "checkpoints" / "best.safetensors").is_file()
    assert result.result_uri == str(tmp_path / "out" / "results" / "attempt-1.json")


def test_a_multilabel_run_learns(tmp_path, termination_log):
    train, evaluation = _dataset(tmp_path / "data", task="multilabel")
    config = _config(tmp_path, train, evaluation, task="multilabel", hyperparameters={"epochs": 12})
    code, result = _run(config, termination_log)
    assert code == ExitCode.SUCCESS, result.reason
    assert result.primary_metric == "average_precision_macro"
    assert result.metrics["average_precision_macro"] >= 0.85  # a class's base rate is ~0.5


def test_an_absurd_learning_rate_diverges(tmp_path, termination_log):
    train, _ = _dataset(tmp_path / "data")
    code, result = _run(_config(tmp_path, train, hyperparameters={"lr": 1e4}), termination_log)
    assert code == 68
    assert result.stopped_by == "diverged"
    assert "exploded" in result.reason or "nan" in result.reason.lower()


def test_a_loss_stuck_at_chance_level_is_divergence(tmp_path, termination_log):
    train, _ = _dataset(tmp_path / "data")
    hyperparameters = {"lr": 1e-12, "divergence_patience_steps": 12}
    code, result = _run(_config(tmp_path, train, hyperparameters=hyperparameters), termination_log)
    assert code == ExitCode.DIVERGED
    assert "never got below chance level (1.3863)" in result.reason
    assert result.steps == 12


def test_the_attempt_stops_itself_within_its_allowance(tmp_path, termination_log, monkeypatch):
    # The backstop alone: were the schedule not fitted to the allowance (below), or the
    # pace to slow after it was, the allowance still stops the attempt in time.
    monkeypatch.setattr(ScheduleFit, "ready", lambda *_: False)
    train, evaluation = _dataset(tmp_path / "data")
    # Factor 2: each wall second costs two calibrated seconds.
    config = _config(
        tmp_path,
        train,
        evaluation,
        allowance_gpu_seconds=14,
        calibration_factor=2.0,
        hyperparameters={"epochs": 10_000},
    )
    started = time.monotonic()
    code, result = _run(config, termination_log)
    wall = time.monotonic() - started

    assert code == ExitCode.SUCCESS, result.reason
    assert result.stopped_by == "allowance"
    # It trained until the allowance stopped it (how many steps that buys depends on the
    # machine's load; the reserve kept for the last evaluation and checkpoint is measured).
    assert 1 <= result.steps < 10_000 * 6
    assert 14 * 0.25 <= result.gpu_seconds <= 14
    assert result.gpu_seconds == pytest.approx(2 * result.wall_seconds, rel=0.01)
    assert wall < 7 + 1  # 14 calibrated seconds at factor 2, plus the test's own overhead
    assert "top1_accuracy" in result.metrics  # evaluated before stopping
    state = torch.load(tmp_path / "out" / "checkpoints" / "last.pt", weights_only=True)
    assert state["books"]["step"] == result.steps


def test_a_plan_longer_than_the_allowance_is_shortened_to_end_within_it(tmp_path, termination_log):
    # The allowance counts from `main`, whose first run in a process imports timm and
    # torchvision (3 s here, of the 7 s this allowance lasts): import them first, as any
    # earlier test in this module does, so the test is the same run alone.
    import timm  # noqa: F401

    train, evaluation = _dataset(tmp_path / "data")
    overrides = {"allowance_gpu_seconds": 14, "calibration_factor": 2.0}
    planned = 10_000 * 6  # 96 training images, 16 a step
    config = _config(tmp_path, train, evaluation, hyperparameters={"epochs": 10_000}, **overrides)
    code, result = _run(config, termination_log)

    assert code == ExitCode.SUCCESS, result.reason
    # It finished its schedule (not cut part way down it) inside the allowance.
    assert result.stopped_by == "completed", result.reason
    assert f"of {planned} planned steps" in result.reason
    assert 1 <= result.steps < planned
    assert result.gpu_seconds <= 14
    state = torch.load(tmp_path / "out" / "checkpoints" / "last.pt", weights_only=True)
    books = state["books"]
    assert (books["planned_steps"], books["fitted_steps"]) == (planned, result.steps)
    # The learning rate ended at its floor: min_lr_ratio 0.01 of lr 3e-3.
    assert state["scheduler"]["_last_lr"][0] == pytest.approx(3e-5)

    # A retry of the same plan keeps the fitted end: nothing is left to train.
    code, again = _run(
        _config(
            tmp_path, train, evaluation, attempt=2, **overrides, hyperparameters={"epochs": 10_000}
        ),
        termination_log,
    )
    assert code == ExitCode.SUCCESS, again.reason
    assert (again.resumed_from_step, again.steps) == (result.steps, result.steps)

    # A promotion (a longer plan) trains on from there.
    code, promoted = _run(
        _config(
            tmp_path, train, evaluation, attempt=3, **overrides, hyperparameters={"epochs": 20_000}
        ),
        termination_log,
    )
    assert code == ExitCode.SUCCESS, promoted.reason
    assert promoted.resumed_from_step == result.steps
    assert promoted.steps > result.steps


def test_bad_hyperparameters_are_named(tmp_path, termination_log):
    train, _ = _dataset(tmp_path / "data")
    code, result = _run(_config(tmp_path, train, hyperparameters={"lr_typo": 1}), termination_log)
    assert code == ExitCode.INVALID_CONFIG
    assert "lr_typo" in result.reason


def test_a_missing_dataset_ends_the_run_with_not_found(tmp_path, termination_log):
    code, result = _run(_config(tmp_path, str(tmp_path / "nowhere.json")), termination_log)
    assert code == ExitCode.DATASET_NOT_FOUND
    assert "nowhere.json" in result.reason


def _weights(output: Path) -> dict[str, torch.Tensor]:
    state = torch.load(output / "checkpoints" / "last.pt", weights_only=True)
    model: dict[str, torch.Tensor] = state["model"]
    return model


def test_sigterm_checkpoints_and_the_next_attempt_resumes_exactly(tmp_path, termination_log):
    train, evaluation = _dataset(tmp_path / "data")
    steps = 200
    hyperparameters = {"max_steps": steps, "augmentation": 0.5, "log_every_steps": 1}

    # The reference: one uninterrupted attempt.
    reference = tmp_path / "reference"
    reference.mkdir()
    config = _config(reference, train, evaluation, hyperparameters=hyperparameters)
    code, uninterrupted = _run(config, termination_log)
    assert code == ExitCode.SUCCESS
    assert uninterrupted.steps == steps

    # The same trial, stopped by SIGTERM part-way through.
    config = _config(tmp_path, train, evaluation, hyperparameters=hyperparameters)
    # The reference ran in this process: the child must sum floats with as many threads,
    # whatever torch was started with before this module's conftest set OMP_NUM_THREADS.
    env = dict(
        os.environ,
        TAILOR_TERMINATION_LOG=str(termination_log),
        OMP_NUM_THREADS=str(torch.get_num_threads()),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tailor_trainer.cli", "run", "--config", str(config)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if " step 20/" in line:
            process.send_signal(signal.SIGTERM)
            break
    process.stderr.read()
    assert process.wait(timeout=60) == 75
    stopped = AttemptResult.model_validate_json(termination_log.read_text())
    assert stopped.stopped_by == "signal"
    assert 20 <= stopped.steps < steps
    assert stopped.checkpoint_uri == str(tmp_path / "out" / "checkpoints" / "last.pt")

    # The next attempt continues from that step, not from zero.
    code, resumed = _run(
        _config(tmp_path, train, evaluation, attempt=2, hyperparameters=hyperparameters),
        termination_log,
    )
    assert code == ExitCode.SUCCESS
    assert resumed.resumed_from_step == stopped.steps
    assert resumed.steps == steps
    assert resumed.images_seen == steps * 16
    # Same batches, same augmentation draws, same updates: the same weights.
    expected, actual = _weights(reference / "out"), _weights(tmp_path / "out")
    for name, tensor in expected.items():
        assert torch.allclose(actual[name], tensor, atol=1e-6), name


@pytest.mark.slow
def test_two_processes_train_together_and_stop_together_on_sigterm(tmp_path, termination_log):
    """The DDP path on CPU (gloo): the launcher starts two ranks and forwards SIGTERM."""
    train, evaluation = _dataset(tmp_path / "data")
    config = _config(
        tmp_path,
        train,
        evaluation,
        gpus=2,
        hyperparameters={"max_steps": 500, "batch_size": 8, "log_every_steps": 1},
    )
    env = dict(os.environ, TAILOR_TERMINATION_LOG=str(termination_log), TAILOR_CPU_PROCESSES="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "tailor_trainer.cli", "run", "--config", str(config)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if " step 10/500" in line:
            process.send_signal(signal.SIGTERM)
            break
    process.stderr.read()
    assert process.wait(timeout=90) == ExitCode.RETRYABLE

    result = AttemptResult.model_validate_json(termination_log.read_text())
    assert result.stopped_by == "signal"
    assert result.images_seen == result.steps * 8 * 2  # each step: a batch on each rank
    state = torch.load(tmp_path / "out" / "checkpoints" / "last.pt", weights_only=True)
    assert state["books"]["step"] == result.steps >= 10
    document = json.loads((tmp_path / "out" / "results" / "attempt-1.json").read_text())
    assert document["config"]["batch"] == {"per_process": 8, "processes": 2}
    # Calibrated seconds count both GPUs.
    assert result.gpu_seconds == pytest.approx(2 * result.wall_seconds, rel=0.01)


def test_an_image_that_fails_to_decode_mid_run_ends_it_as_corrupt(tmp_path, termination_log):
    train, evaluation = _dataset(tmp_path / "data")
    document = json.loads(Path(train).read_text())
    broken = tmp_path / "data" / document["images"][3]["file_name"]
    broken.write_bytes(b"not a png")
    # A loader worker process meets it: its exception must still end the run as corrupt.
    config = _config(tmp_path, train, evaluation, hyperparameters={"workers": 1})
    code, result = _run(config, termination_log)
    assert code == ExitCode.DATASET_CORRUPT
    assert result.reason.startswith(f"image 4 ({broken}) fails to decode")


def test_an_explicit_resume_checkpoint_that_does_not_exist_is_named(tmp_path, termination_log):
    train, _ = _dataset(tmp_path / "data")
    missing = str(tmp_path / "elsewhere" / "last.pt")
    code, result = _run(_config(tmp_path, train, resume=missing), termination_log)
    assert code == ExitCode.INVALID_CONFIG
    assert missing in result.reason
