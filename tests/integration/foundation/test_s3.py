"""boto3 against the real MinIO server."""

import hashlib
import os

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration


def test_put_get_and_list(s3, bucket):
    client = s3.client()
    client.put_object(Bucket=bucket, Key="data/a.json", Body=b'{"a": 1}')
    client.put_object(Bucket=bucket, Key="data/b.json", Body=b'{"b": 2}')
    client.put_object(Bucket=bucket, Key="other/c.json", Body=b"{}")
    assert client.get_object(Bucket=bucket, Key="data/a.json")["Body"].read() == b'{"a": 1}'
    listed = client.list_objects_v2(Bucket=bucket, Prefix="data/")
    assert [o["Key"] for o in listed["Contents"]] == ["data/a.json", "data/b.json"]


def test_multipart_upload_reassembles_the_parts(s3, bucket):
    client = s3.client()
    parts_data = [os.urandom(5 * 1024 * 1024), os.urandom(5 * 1024 * 1024), os.urandom(1234)]
    upload = client.create_multipart_upload(Bucket=bucket, Key="big.bin")
    parts = []
    for number, data in enumerate(parts_data, start=1):
        answer = client.upload_part(
            Bucket=bucket, Key="big.bin", UploadId=upload["UploadId"], PartNumber=number, Body=data
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key="big.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    body = client.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts_data)).digest()


def test_missing_key_is_a_no_such_key_error(s3, bucket):
    with pytest.raises(ClientError) as missing:
        s3.client().get_object(Bucket=bucket, Key="absent.json")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"


def test_wrong_credentials_are_refused(s3, bucket):
    from tailor_devcluster.minio import S3Endpoint

    impostor = S3Endpoint(s3.endpoint_url, s3.access_key, "not-the-secret")
    with pytest.raises(ClientError) as refused:
        impostor.client().list_objects_v2(Bucket=bucket)
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
