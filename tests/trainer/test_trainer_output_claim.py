"""A job's output prefix is its own: validation claims it (tailor-job.json) before any
GPU, and refuses one that holds another job's outputs, or objects no job claimed,
without deleting or overwriting anything there."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tailor_contract import AttemptResult, DatasetRef, ExitCode, TrialConfig
from tailor_trainer import ownership
from tailor_trainer.cli import main
from tailor_trainer.ownership import MARKER, OutputTaken
from tailor_trainer.storage import Storage

UID_A = "3f1e0c2a-aaaa-4d0e-9a0b-000000000001"
UID_B = "3f1e0c2a-bbbb-4d0e-9a0b-000000000002"


@pytest.fixture
def validate_job(tmp_path, termination_log) -> Callable[..., tuple[int, AttemptResult]]:
    """`tailor-train validate --config` as the operator's validation pod runs it: the
    job's identity and output prefix in the config."""

    def run(
        annotations: str, output: str, uid: str, job: str = "team-a/insects"
    ) -> tuple[int, AttemptResult]:
        config = TrialConfig(
            job=job,
            job_uid=uid,
            job_output=output,
            trial="validate",
            attempt=1,
            task="classification",
            dataset=DatasetRef(train=annotations),
            model="test_resnet",
            allowance_gpu_seconds=1e9,
            calibration_factor=1.0,
            gpus=0,
            output=output.rstrip("/") + "/validation/",
        )
        path = tmp_path / f"validate-{uid}.json"
        path.write_text(config.model_dump_json())
        code = main(["validate", "--config", str(path)])
        return code, AttemptResult.model_validate_json(termination_log.read_text())

    return run


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_validation_claims_an_empty_output_for_its_job(local_dataset, tmp_path, validate_job):
    output = str(tmp_path / "models" / "insects") + "/"
    code, result = validate_job(local_dataset.annotations, output, UID_A)
    assert code == ExitCode.SUCCESS, result.reason
    marker = json.loads((tmp_path / "models" / "insects" / MARKER).read_text())
    assert (marker["job"], marker["uid"]) == ("team-a/insects", UID_A)
    assert marker["claimed"]
    # Nothing else: the marker is all validation writes.
    assert list(_tree(tmp_path / "models")) == [f"insects/{MARKER}"]


def test_the_same_job_validates_again_on_its_own_output(local_dataset, tmp_path, validate_job):
    output = str(tmp_path / "out")
    assert validate_job(local_dataset.annotations, output, UID_A)[0] == 0
    before = _tree(tmp_path / "out")
    (tmp_path / "out" / "trials" / "t0").mkdir(parents=True)
    (tmp_path / "out" / "trials" / "t0" / "result.json").write_text("{}")  # its trials' outputs
    code, result = validate_job(local_dataset.annotations, output, UID_A)
    assert code == ExitCode.SUCCESS, result.reason
    assert (tmp_path / "out" / MARKER).read_bytes() == before[MARKER]  # not rewritten


def test_another_jobs_output_is_refused_before_the_dataset_is_read(
    local_dataset, tmp_path, validate_job
):
    output = str(tmp_path / "out") + "/"
    assert validate_job(local_dataset.annotations, output, UID_A)[0] == 0
    (tmp_path / "out" / "trials" / "t0" / "checkpoints").mkdir(parents=True)
    (tmp_path / "out" / "trials" / "t0" / "checkpoints" / "last.pt").write_bytes(b"weights")
    before = _tree(tmp_path / "out")

    # The same output, re-applied as another job (a new UID); its dataset is not even
    # there: the output is refused first, before any image is read.
    missing = str(tmp_path / "nowhere" / "train.json")
    code, result = validate_job(missing, output, UID_B, job="team-a/insects-2")
    assert code == ExitCode.INVALID_CONFIG
    assert code == 78  # the contract's number, which the operator never retries
    assert (result.exit, result.stopped_by) == ("INVALID_CONFIG", "config")
    assert f"spec.output {output} belongs to TrainingJob team-a/insects (uid {UID_A})" in (
        result.reason
    )
    assert "choose another spec.output, or delete the objects under" in result.reason
    assert _tree(tmp_path / "out") == before  # nothing deleted, nothing overwritten


def test_outputs_no_job_claimed_are_refused_and_left_alone(local_dataset, tmp_path, validate_job):
    """An older Tailor's outputs (no marker), or anyone's files: never continued."""
    old = tmp_path / "out" / "trials" / "t0" / "checkpoints" / "last.pt"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"an older job's weights")
    code, result = validate_job(local_dataset.annotations, str(tmp_path / "out"), UID_A)
    assert code == ExitCode.INVALID_CONFIG
    assert f"already holds objects that no TrainingJob claimed (e.g. {old}" in result.reason
    assert _tree(tmp_path / "out") == {"trials/t0/checkpoints/last.pt": b"an older job's weights"}


def test_a_neighbouring_prefix_is_not_this_output(local_dataset, tmp_path, validate_job):
    (tmp_path / "out-2").mkdir()
    (tmp_path / "out-2" / "file").write_text("another job's")
    code, result = validate_job(local_dataset.annotations, str(tmp_path / "out"), UID_A)
    assert code == ExitCode.SUCCESS, result.reason


def test_a_failed_validation_claims_nothing(local_dataset, tmp_path, validate_job):
    """The user fixes the dataset and re-creates the job: its output is still free."""
    local_dataset.image_path(0).unlink()
    output = str(tmp_path / "out")
    code, _ = validate_job(local_dataset.annotations, output, UID_A)
    assert code == ExitCode.DATASET_CORRUPT
    assert not (tmp_path / "out").exists()


def test_a_marker_that_is_not_tailors_is_refused(local_dataset, tmp_path, validate_job):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MARKER).write_text("[1, 2]")
    code, result = validate_job(local_dataset.annotations, str(tmp_path / "out"), UID_A)
    assert code == ExitCode.INVALID_CONFIG
    assert "is not a Tailor job marker" in result.reason
    assert (tmp_path / "out" / MARKER).read_text() == "[1, 2]"


def test_of_two_jobs_claiming_at_once_one_wins(tmp_path, monkeypatch):
    """Both checked an empty prefix; the marker is created once, the other job reads
    it back and is refused."""
    storage, output = Storage(), str(tmp_path / "out")
    monkeypatch.setattr(ownership, "check", lambda *_: None)  # both saw it empty
    ownership.claim(storage, output, "team-a/first", UID_A)
    with pytest.raises(OutputTaken, match="belongs to TrainingJob team-a/first"):
        ownership.claim(storage, output, "team-a/second", UID_B)
    assert json.loads((tmp_path / "out" / MARKER).read_text())["uid"] == UID_A


def test_local_create_writes_only_where_nothing_is(tmp_path):
    storage, uri = Storage(), str(tmp_path / "a" / "marker")
    assert storage.create(uri, b"first") is True
    assert storage.create(uri, b"second") is False
    assert Path(uri).read_bytes() == b"first"
    assert sorted(p.name for p in Path(uri).parent.iterdir()) == ["marker"]  # no temporary


@pytest.mark.integration
def test_s3_claims_refuses_and_creates_once(
    s3_storage, s3_dataset, bucket, validate_job, monkeypatch
):
    output = f"s3://{bucket}/models/insects"  # no trailing slash: still a folder
    code, result = validate_job(s3_dataset, output, UID_A)
    assert code == ExitCode.SUCCESS, result.reason
    marker = f"{output}/{MARKER}"
    assert json.loads(s3_storage.read(marker))["uid"] == UID_A
    assert validate_job(s3_dataset, output + "/", UID_A)[0] == ExitCode.SUCCESS

    code, result = validate_job(s3_dataset, output + "/", UID_B)
    assert code == ExitCode.INVALID_CONFIG
    assert (
        f"spec.output {output}/ belongs to TrainingJob team-a/insects (uid {UID_A})"
        in result.reason
    )

    # An object without a marker; a neighbour's prefix (models/insects-2/) is not it.
    s3_storage.write(f"s3://{bucket}/models/old/checkpoints/last.pt", b"old weights")
    code, result = validate_job(s3_dataset, f"s3://{bucket}/models/old/", UID_B)
    assert code == ExitCode.INVALID_CONFIG
    assert f"s3://{bucket}/models/old/checkpoints/last.pt" in result.reason
    assert not s3_storage.exists(f"s3://{bucket}/models/old/{MARKER}")
    code, result = validate_job(s3_dataset, f"s3://{bucket}/models/insects-2/", UID_B)
    assert code == ExitCode.SUCCESS, result.reason

    # S3's conditional PUT (If-None-Match, not a check then a PUT): the first create
    # wins, the second leaves it as it was.
    uri = f"s3://{bucket}/once"
    monkeypatch.setattr(s3_storage, "exists", None)  # the fallback is not taken
    assert s3_storage.create(uri, b"first") is True
    assert s3_storage.create(uri, b"second") is False
    assert s3_storage.read(uri) == b"first"
