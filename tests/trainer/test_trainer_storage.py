"""Storage: one API over local paths and a real S3 server (MinIO), atomic writes, cache.

How S3 writes are made (one PUT or one multipart upload, nothing else) is in
test_trainer_s3_writes.py."""

import io
import pickle

import pytest
from botocore.exceptions import ClientError

from tailor_contract import ExitCode
from tailor_trainer.cache import CachedReader
from tailor_trainer.storage import (
    PART_SIZE,
    ObjectNotFound,
    Storage,
    StorageError,
    _s3_errors,
    join,
    resolve,
)
from tailor_trainer.validate import ValidateOptions, validate


@pytest.mark.parametrize(
    ("annotations", "reference", "expected"),
    [
        ("s3://b/data/train.json", "img/a.png", "s3://b/data/img/a.png"),
        ("s3://b/data/train.json", "../other/a.png", "s3://b/other/a.png"),
        ("s3://b/data/train.json", "s3://c/x.png", "s3://c/x.png"),
        ("/data/train.json", "img/a.png", "/data/img/a.png"),
        ("/data/train.json", "/abs/a.png", "/abs/a.png"),
        ("file:///data/train.json", "a.png", "/data/a.png"),
    ],
)
def test_images_resolve_beside_the_annotation_file_unless_absolute(
    annotations, reference, expected
):
    assert resolve(annotations, reference) == expected


def test_join_keeps_the_scheme():
    assert (
        join("s3://bucket/prefix", "checkpoints", "last.pt")
        == "s3://bucket/prefix/checkpoints/last.pt"
    )
    assert join("/tmp/out", "last.pt") == "/tmp/out/last.pt"


def test_local_writes_replace_atomically_and_leave_no_temporary_file(tmp_path):
    storage = Storage()
    target = str(tmp_path / "deep" / "dir" / "object.bin")
    storage.write(target, b"first")
    storage.write(target, b"second")
    assert storage.read(target) == b"second"
    assert [p.name for p in (tmp_path / "deep" / "dir").iterdir()] == ["object.bin"]
    assert storage.list(str(tmp_path)) == [target]


def test_local_writes_take_a_stream_and_a_failed_one_leaves_the_old_file(tmp_path):
    storage = Storage()
    target = str(tmp_path / "object.bin")
    source = io.BytesIO(b"skip:streamed")
    source.seek(5)
    storage.write(target, source)  # read from the current position
    assert storage.read(target) == b"streamed"

    class Broken:
        def read(self, size: int = -1) -> bytes:
            raise OSError("the source broke mid-way")

    with pytest.raises(StorageError, match="the source broke mid-way"):
        storage.write(target, Broken())
    assert storage.read(target) == b"streamed"
    assert [p.name for p in tmp_path.iterdir()] == ["object.bin"]  # no temporary left


def test_storage_keeps_its_endpoint_and_part_size_across_a_pickle():
    storage = pickle.loads(pickle.dumps(Storage("http://example.invalid", part_size=5 * 2**20)))
    assert (storage.endpoint, storage.part_size) == ("http://example.invalid", 5 * 2**20)
    assert Storage().part_size == PART_SIZE


def test_local_missing_objects_are_not_found(tmp_path):
    storage = Storage()
    with pytest.raises(ObjectNotFound, match="no such file"):
        storage.read(str(tmp_path / "absent"))
    assert not storage.exists(str(tmp_path / "absent"))
    with pytest.raises(ObjectNotFound):
        storage.read(str(tmp_path))  # a folder is not an object


@pytest.mark.parametrize(
    ("code", "kind"),
    [("NoSuchKey", ObjectNotFound), ("AccessDenied", ObjectNotFound), ("SlowDown", StorageError)],
)
def test_s3_error_codes_map_to_not_found_or_transient(code, kind):
    error = ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")
    with pytest.raises(kind) as raised, _s3_errors("s3://b/k"):
        raise error
    assert isinstance(raised.value, ObjectNotFound) == (kind is ObjectNotFound)
    assert "s3://b/k" in str(raised.value)


@pytest.mark.integration
def test_s3_round_trip_and_atomic_write_leave_no_temporary_object(s3_storage, bucket, s3):
    uri = f"s3://{bucket}/out/checkpoints/last.pt"
    s3_storage.write(uri, b"one")
    s3_storage.write(uri, b"two")
    assert s3_storage.read(uri) == b"two"
    assert s3_storage.exists(uri)
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["out/checkpoints/last.pt"]
    assert s3_storage.list(f"s3://{bucket}/out/") == [uri]
    s3_storage.delete(uri)
    assert not s3_storage.exists(uri)


@pytest.mark.integration
def test_s3_missing_keys_and_buckets_are_not_found(s3_storage, bucket):
    with pytest.raises(ObjectNotFound, match="NoSuchKey"):
        s3_storage.read(f"s3://{bucket}/absent.json")
    with pytest.raises(ObjectNotFound, match="NoSuchBucket"):
        s3_storage.read("s3://no-such-bucket-tailor/absent.json")


@pytest.mark.integration
def test_wrong_credentials_are_not_found_not_a_crash(s3, bucket, monkeypatch):
    for key, value in s3.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(ObjectNotFound):
        Storage().read(f"s3://{bucket}/anything.json")


@pytest.mark.integration
def test_the_cache_serves_later_reads_from_disk(s3_storage, bucket, tmp_path):
    uri = f"s3://{bucket}/images/a.png"
    s3_storage.write(uri, b"pixels")
    reader = CachedReader(s3_storage, tmp_path / "cache")
    assert reader.read(uri) == b"pixels"
    s3_storage.delete(uri)
    assert reader.read(uri) == b"pixels"  # served from the cache: the object is gone
    assert len(list((tmp_path / "cache").rglob("*"))) == 2  # one folder, one entry


@pytest.mark.integration
def test_validate_reads_a_dataset_from_s3(s3_storage, s3_dataset, s3):
    report = validate(s3_storage, ValidateOptions(annotations=s3_dataset))
    assert report.code == ExitCode.SUCCESS, report.result.problems
    assert report.result.dataset is not None
    assert report.result.dataset.decoded_images == 12

    bucket = s3_dataset.removeprefix("s3://").split("/")[0]
    s3.client().delete_object(Bucket=bucket, Key="data/images/0-00003.png")
    report = validate(s3_storage, ValidateOptions(annotations=s3_dataset))
    assert report.code == ExitCode.DATASET_CORRUPT
    assert report.result.problem_counts == {"missing_image": 1}
    assert "data/images/0-00003.png" in report.result.problems[0]


@pytest.mark.integration
def test_validate_reports_a_missing_s3_annotation_file_as_not_found(s3_storage, bucket):
    report = validate(s3_storage, ValidateOptions(annotations=f"s3://{bucket}/none.json"))
    assert report.code == ExitCode.DATASET_NOT_FOUND
