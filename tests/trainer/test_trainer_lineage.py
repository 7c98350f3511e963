"""A checkpoint records its job (UID), trial and the attempts that wrote it; an attempt
resumes implicitly only from its own trial's, and never restores nor overwrites
another's."""

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tailor_contract import AttemptResult, ExitCode
from tailor_trainer.cli import main
from tailor_trainer.ownership import MARKER
from tailor_trainer.storage import Storage
from tailor_trainer.synthetic import SyntheticSpec, write

UID_A = "6c0d2f4e-aaaa-4b1a-8c1d-00000000000a"
UID_B = "6c0d2f4e-bbbb-4b1a-8c1d-00000000000b"
FAST = {"batch_size": 8, "input_size": 32, "workers": 0, "augmentation": 0.0, "max_steps": 2}


@pytest.fixture
def train(tmp_path: Path) -> str:
    return write(Storage(), str(tmp_path / "data"), SyntheticSpec(2, 8, seed=0), "train.json")


def _config(tmp_path: Path, train: str, uid: str = UID_A, **overrides: Any) -> Path:
    config = {
        "job": "team-a/insects",
        "job_uid": uid,
        "trial": "t0",
        "attempt": 1,
        "task": "classification",
        "dataset": {"train": train},
        "model": "test_resnet",
        "hyperparameters": {**FAST, **overrides.pop("hyperparameters", {})},
        "allowance_gpu_seconds": 600,
        "calibration_factor": 1.0,
        "gpus": 0,
        "output": str(tmp_path / "out" / "trials" / "t0"),
        **overrides,
    }
    path = tmp_path / f"config-{uid}-{config['trial']}-{config['attempt']}.json"
    path.write_text(json.dumps(config))
    return path


def _run(config: Path, termination_log: Path) -> tuple[int, AttemptResult]:
    code = main(["run", "--config", str(config)])
    return code, AttemptResult.model_validate_json(termination_log.read_text())


def _last(output: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(
        output / "checkpoints" / "last.pt", weights_only=True, map_location="cpu"
    )
    return state


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_checkpoint_records_its_job_trial_and_attempts(tmp_path, train, termination_log):
    output = tmp_path / "out" / "trials" / "t0"
    code, first = _run(_config(tmp_path, train), termination_log)
    assert code == ExitCode.SUCCESS, first.reason
    assert _last(output)["lineage"] == {"job_uid": UID_A, "trial": "t0", "attempts": [1]}

    # A retry or a promotion of the same trial: the same job's checkpoint, continued.
    promoted = _config(tmp_path, train, attempt=2, hyperparameters={"max_steps": 4})
    code, second = _run(promoted, termination_log)
    assert code == ExitCode.SUCCESS, second.reason
    assert second.resumed_from_step == 2
    assert second.steps == 4
    assert _last(output)["lineage"] == {"job_uid": UID_A, "trial": "t0", "attempts": [1, 2]}

    code, third = _run(_config(tmp_path, train, attempt=3), termination_log)
    assert code == ExitCode.SUCCESS, third.reason
    assert _last(output)["lineage"]["attempts"] == [1, 2, 3]


def test_another_jobs_checkpoint_is_never_resumed_nor_overwritten(tmp_path, train, termination_log):
    """The same output re-applied as another job (a new UID): the old job's weights are
    not continued; the attempt ends with INVALID_CONFIG before any data is read."""
    assert _run(_config(tmp_path, train), termination_log)[0] == ExitCode.SUCCESS
    before = _tree(tmp_path / "out")

    code, result = _run(_config(tmp_path, train, uid=UID_B), termination_log)
    assert code == ExitCode.INVALID_CONFIG
    assert code == 78  # the contract's number, which the operator never retries
    checkpoint = tmp_path / "out" / "trials" / "t0" / "checkpoints" / "last.pt"
    assert f"the checkpoint {checkpoint} under this trial's output is of job uid {UID_A}" in (
        result.reason
    )
    assert f"not of this job (uid {UID_B})" in result.reason
    assert _tree(tmp_path / "out") == before


def test_another_trials_checkpoint_is_not_resumed(tmp_path, train, termination_log):
    assert _run(_config(tmp_path, train), termination_log)[0] == ExitCode.SUCCESS
    # A trial of the same job pointed at t0's output (never by the operator): refused.
    code, result = _run(_config(tmp_path, train, trial="t1"), termination_log)
    assert code == ExitCode.INVALID_CONFIG
    assert f"job uid {UID_A}, trial t0, attempts 1" in result.reason


def test_a_checkpoint_without_identity_is_not_resumed(tmp_path, train, termination_log):
    """An older Tailor's checkpoint (format 1) says nobody's lineage: never continued."""
    assert _run(_config(tmp_path, train), termination_log)[0] == ExitCode.SUCCESS
    path = tmp_path / "out" / "trials" / "t0" / "checkpoints" / "last.pt"
    state = _last(path.parent.parent)
    del state["lineage"]
    state["format"] = 1
    torch.save(state, path)

    code, result = _run(_config(tmp_path, train, attempt=2), termination_log)
    assert code == ExitCode.INVALID_CONFIG
    assert "with no job identity" in result.reason


def test_an_explicit_resume_continues_any_checkpoint_and_starts_its_own_lineage(
    tmp_path, train, termination_log
):
    """`resume` names a checkpoint deliberately (warm-starting from another job's)."""
    assert _run(_config(tmp_path, train), termination_log)[0] == ExitCode.SUCCESS
    theirs = tmp_path / "out" / "trials" / "t0" / "checkpoints" / "last.pt"
    mine = tmp_path / "mine"
    config = _config(
        tmp_path,
        train,
        uid=UID_B,
        output=str(mine),
        resume=str(theirs),
        hyperparameters={"max_steps": 3},
    )
    code, result = _run(config, termination_log)
    assert code == ExitCode.SUCCESS, result.reason
    assert result.resumed_from_step == 2
    assert _last(mine)["lineage"] == {"job_uid": UID_B, "trial": "t0", "attempts": [1]}
    assert _last(theirs.parent.parent)["lineage"]["job_uid"] == UID_A  # theirs untouched


def test_a_trial_refuses_an_output_another_job_claimed(tmp_path, train, termination_log):
    """The backstop of validation's claim: checked before the trial reads anything."""
    (tmp_path / "out").mkdir()
    marker = {"job": "team-a/other", "uid": UID_A}
    (tmp_path / "out" / MARKER).write_text(json.dumps(marker))
    job_output = str(tmp_path / "out") + "/"
    code, result = _run(_config(tmp_path, train, uid=UID_B, job_output=job_output), termination_log)
    assert code == ExitCode.INVALID_CONFIG
    assert f"belongs to TrainingJob team-a/other (uid {UID_A})" in result.reason
    assert _tree(tmp_path / "out") == {MARKER: json.dumps(marker).encode()}

    # Its own job's claim passes.
    code, result = _run(_config(tmp_path, train, uid=UID_A, job_output=job_output), termination_log)
    assert code == ExitCode.SUCCESS, result.reason
