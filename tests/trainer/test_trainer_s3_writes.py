"""S3 writes against a real MinIO: straight to the key, one PUT or one multipart upload.

An S3 PUT, and a completed multipart upload, is atomic by itself: readers see the old
object or the new one. So a write makes no temporary object, no copy and no delete, and
a failed multipart upload is aborted, leaving no parts behind.
"""

import os
import signal
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
import torch

from tailor_trainer import checkpoint
from tailor_trainer.storage import Storage, StorageError

pytestmark = pytest.mark.integration

MiB = 2**20


def record_requests(storage: Storage) -> list[tuple[str, str]]:
    """(operation, key) of every S3 request the storage makes from now on; retries of a
    request are not counted again."""
    requests: list[tuple[str, str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        requests.append((model.name, str(params.get("Key", ""))))

    storage._s3().meta.events.register("before-parameter-build.s3.*", record)
    return requests


def keys(s3: Any, bucket: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def incomplete_uploads(s3: Any, bucket: str, key: str) -> list[str]:
    """Upload ids of multipart uploads to key that were neither completed nor aborted.
    (MinIO lists them for the object's key as prefix, not for the whole bucket.)"""
    listing = s3.client().list_multipart_uploads(Bucket=bucket, Prefix=key)
    return [upload["UploadId"] for upload in listing.get("Uploads", [])]


class FailingReader:
    """A stream that hands out its data and raises after `fail_after` bytes, as a disk or
    a producer that dies mid-way would. Not seekable, so boto3 reads it in parts."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        self.data = data
        self.fail_after = fail_after
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        if self.position >= self.fail_after:
            raise OSError("the source broke mid-way")
        end = len(self.data) if size < 0 else self.position + size
        end = min(end, self.fail_after)
        chunk = self.data[self.position : end]
        self.position = end
        return chunk


def test_the_incomplete_upload_check_sees_an_abandoned_upload(s3, bucket):
    # Else the "no incomplete upload" assertions below could pass vacuously.
    client = s3.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key="out/big.bin")["UploadId"]
    assert incomplete_uploads(s3, bucket, "out/big.bin") == [upload]
    client.abort_multipart_upload(Bucket=bucket, Key="out/big.bin", UploadId=upload)
    assert incomplete_uploads(s3, bucket, "out/big.bin") == []


def test_a_small_checkpoint_write_is_one_put_to_its_key(s3_storage, bucket, s3):
    requests = record_requests(s3_storage)
    uri = checkpoint.save_last(s3_storage, f"s3://{bucket}/out", {"step": 7})
    assert uri == f"s3://{bucket}/out/checkpoints/last.pt"
    assert requests == [("PutObject", "out/checkpoints/last.pt")]  # no copy, no delete
    assert checkpoint.load(s3_storage, uri) == {"step": 7}


def test_checkpoint_writes_touch_and_leave_only_their_final_keys(s3_storage, bucket, s3):
    output = f"s3://{bucket}/out"
    requests = record_requests(s3_storage)
    checkpoint.save_last(s3_storage, output, {"step": 1})
    checkpoint.save_best(s3_storage, output, torch.nn.Linear(2, 2), {"epoch": 1})
    checkpoint.save_last(s3_storage, output, {"step": 2})  # replaces the first
    final = ["out/checkpoints/best.json", "out/checkpoints/best.safetensors"]
    final.append("out/checkpoints/last.pt")
    assert sorted({key for _, key in requests}) == final  # no temporary key, ever
    assert {operation for operation, _ in requests} == {"PutObject"}
    assert keys(s3, bucket) == final
    assert checkpoint.load(s3_storage, f"{output}/checkpoints/last.pt") == {"step": 2}


# Killed right after its first S3 request got its answer: the window in which a
# temporary object used to exist without its copy.
_KILLED_AFTER_FIRST_REQUEST = """
import os, signal, sys
from tailor_trainer.storage import Storage

storage = Storage()
kill = lambda **_: os.kill(os.getpid(), signal.SIGKILL)
storage._s3().meta.events.register("after-call.s3.*", kill)
storage.write(sys.argv[1], b"new checkpoint")
"""


def test_a_writer_killed_mid_write_leaves_no_stray_object(s3_storage, bucket, s3):
    uri = f"s3://{bucket}/out/checkpoints/last.pt"
    s3_storage.write(uri, b"old checkpoint")
    # The environment (endpoint, credentials) comes from the s3_storage fixture.
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_FIRST_REQUEST, uri],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert keys(s3, bucket) == ["out/checkpoints/last.pt"]
    assert s3_storage.read(uri) == b"new checkpoint"  # the one PUT had completed


def test_a_write_above_the_part_size_is_one_multipart_upload(s3_storage, bucket, s3):
    storage = Storage(part_size=5 * MiB)  # the smallest part S3 accepts
    requests = record_requests(storage)
    data = os.urandom(6 * MiB)
    uri = f"s3://{bucket}/out/checkpoints/last.pt"
    storage.write(uri, data)
    assert Counter(operation for operation, _ in requests) == {
        "CreateMultipartUpload": 1,
        "UploadPart": 2,
        "CompleteMultipartUpload": 1,
    }
    assert {key for _, key in requests} == {"out/checkpoints/last.pt"}
    assert storage.read(uri) == data
    assert keys(s3, bucket) == ["out/checkpoints/last.pt"]
    assert incomplete_uploads(s3, bucket, "out/checkpoints/last.pt") == []


def test_a_write_that_fails_mid_way_is_aborted_and_keeps_the_old_object(s3_storage, bucket, s3):
    storage = Storage(part_size=5 * MiB)
    uri = f"s3://{bucket}/out/checkpoints/last.pt"
    storage.write(uri, b"old checkpoint")
    requests = record_requests(storage)
    source = FailingReader(os.urandom(12 * MiB), fail_after=7 * MiB)
    with pytest.raises(StorageError, match="the source broke mid-way") as raised:
        storage.write(uri, source)
    assert "out/checkpoints/last.pt" in str(raised.value)
    operations = Counter(operation for operation, _ in requests)
    assert operations["CreateMultipartUpload"] == 1  # a multipart upload had started...
    assert operations["AbortMultipartUpload"] == 1  # ...and was aborted
    assert "CompleteMultipartUpload" not in operations
    assert incomplete_uploads(s3, bucket, "out/checkpoints/last.pt") == []
    assert keys(s3, bucket) == ["out/checkpoints/last.pt"]
    assert storage.read(uri) == b"old checkpoint"


def test_a_write_that_fails_mid_way_leaves_no_key_when_there_was_none(s3_storage, bucket, s3):
    storage = Storage(part_size=5 * MiB)
    uri = f"s3://{bucket}/out/checkpoints/last.pt"
    with pytest.raises(StorageError):
        storage.write(uri, FailingReader(os.urandom(12 * MiB), fail_after=7 * MiB))
    assert keys(s3, bucket) == []
    assert incomplete_uploads(s3, bucket, "out/checkpoints/last.pt") == []


@pytest.mark.parametrize("size", [10, 6 * MiB], ids=["put", "multipart"])
def test_a_write_to_a_missing_bucket_is_a_storage_error(s3_storage, s3, size):
    storage = Storage(part_size=5 * MiB)
    with pytest.raises(StorageError, match="NoSuchBucket"):
        storage.write("s3://no-such-bucket-tailor/out/last.pt", bytes(size))
    assert "no-such-bucket-tailor" not in {b["Name"] for b in s3.client().list_buckets()["Buckets"]}
