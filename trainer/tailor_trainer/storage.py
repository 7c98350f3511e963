"""All object I/O of the trainer: local paths and S3-compatible stores behind one API,
and read-only http(s):// (an in-cluster mirror of pretrained weights).

This is the only module that touches boto3. Writes are atomic in both worlds, so a
reader never sees half a checkpoint: on a filesystem a temporary file is fsynced and
renamed into place; in S3 the object goes straight to its key, because a PUT and a
completed multipart upload are atomic by themselves (readers get the old object or the
new one), and a failed multipart upload is aborted.
"""

import contextlib
import io
import itertools
import os
import posixpath
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class Readable(Protocol):
    """A binary stream to write from (a file, io.BytesIO): read until it returns b""."""

    def read(self, size: int = -1, /) -> bytes: ...


class StorageError(Exception):
    """A storage failure that another attempt may not see (network, throttling, server)."""


class ObjectNotFound(StorageError):
    """The object, its bucket or the permission to read it is missing."""


# Missing, or not readable with these credentials: either way the user must act.
_MISSING_CODES = frozenset(
    {
        "404", "NoSuchKey", "NoSuchBucket", "NotFound",
        "403", "AccessDenied", "Forbidden", "AllAccessDisabled",
        "InvalidAccessKeyId", "SignatureDoesNotMatch",
    }
)  # fmt: skip


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def is_http(uri: str) -> bool:
    return uri.startswith(("https://", "http://"))


# S3 objects up to this size go up in one PUT; larger ones as a multipart upload of parts
# this size (S3 takes parts of 5 MiB to 5 GiB, at most 10,000 of them; boto3 enlarges
# the parts of an object of known size that would need more).
PART_SIZE = 16 * 2**20
UPLOAD_THREADS = 8

HTTP_TIMEOUT_SECONDS = 60.0
HTTP_ATTEMPTS = 3


def _read_http(uri: str, method: str = "GET") -> bytes:
    """GET (or HEAD) with a few retries; 401/403/404/410 are ObjectNotFound, the rest
    StorageError (5xx, 429, network: retried first)."""
    import time
    import urllib.error
    import urllib.request

    request = urllib.request.Request(uri, method=method)
    for attempt in range(HTTP_ATTEMPTS):
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as error:
            if error.code in (401, 403, 404, 410):
                raise ObjectNotFound(f"{uri}: HTTP {error.code} {error.reason}") from error
            failure: StorageError = StorageError(f"{uri}: HTTP {error.code} {error.reason}")
            if error.code < 500 and error.code != 429:
                raise failure from error
        except (urllib.error.URLError, OSError) as error:  # DNS, refused, timeout, reset
            failure = StorageError(f"{uri}: {getattr(error, 'reason', error)}")
        if attempt + 1 == HTTP_ATTEMPTS:
            raise failure
        time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _read_only(uri: str) -> ValueError:
    return ValueError(f"{uri}: http(s) URIs can be read, not written, listed or deleted")


def parse_s3(uri: str) -> S3Location:
    rest = uri.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"S3 URI without a bucket: {uri!r}")
    return S3Location(bucket, key)


def local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def join(base: str, *parts: str) -> str:
    """Join path segments onto a URI prefix (s3:// or local), like os.path.join."""
    if is_s3(base):
        return "s3://" + posixpath.join(base.removeprefix("s3://"), *parts)
    return str(local_path(base).joinpath(*parts))


def resolve(annotation_uri: str, reference: str) -> str:
    """Where an image named in an annotation file lives: absolute as given, else beside it."""
    if "://" in reference or reference.startswith("/"):
        return reference
    if is_s3(annotation_uri):
        parent = posixpath.dirname(annotation_uri.removeprefix("s3://"))
        return "s3://" + posixpath.normpath(posixpath.join(parent, reference))
    return str(local_path(annotation_uri).parent / reference)


class Storage:
    """Reads and writes objects by URI; picklable, so data loader workers can carry it."""

    def __init__(self, endpoint: str | None = None, *, part_size: int = PART_SIZE) -> None:
        # The config's endpoint wins; else the standard variable, as the AWS CLI does.
        self.endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") or None
        self.part_size = part_size
        self._client: S3Client | None = None
        self._client_pid = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # boto3 clients do not survive a fork or a pickle; each process builds its own.
        return {"endpoint": self.endpoint, "part_size": self.part_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["endpoint"], part_size=state["part_size"])  # type: ignore[misc]

    def _s3(self) -> "S3Client":
        with self._lock:
            if self._client is None or self._client_pid != os.getpid():
                import boto3
                from botocore.config import Config

                config = Config(
                    retries={"max_attempts": 5, "mode": "standard"},
                    max_pool_connections=32,
                    s3={"addressing_style": "path"} if self.endpoint else {},
                )
                session = boto3.session.Session()
                self._client = session.client("s3", endpoint_url=self.endpoint, config=config)
                self._client_pid = os.getpid()
            return self._client

    def read(self, uri: str) -> bytes:
        if is_http(uri):
            return _read_http(uri)
        if not is_s3(uri):
            try:
                return local_path(uri).read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
                raise ObjectNotFound(f"{uri}: no such file") from error
            except PermissionError as error:
                raise ObjectNotFound(f"{uri}: permission denied") from error
            except OSError as error:
                raise StorageError(f"{uri}: {error}") from error
        location = parse_s3(uri)
        with _s3_errors(uri):
            response = self._s3().get_object(Bucket=location.bucket, Key=location.key)
            return response["Body"].read()

    def exists(self, uri: str) -> bool:
        if is_http(uri):
            try:
                _read_http(uri, "HEAD")
            except ObjectNotFound:
                return False
            return True
        if not is_s3(uri):
            return local_path(uri).is_file()
        location = parse_s3(uri)
        try:
            with _s3_errors(uri):
                self._s3().head_object(Bucket=location.bucket, Key=location.key)
        except ObjectNotFound:
            return False
        return True

    def write(self, uri: str, data: bytes | Readable) -> None:
        """Atomically replace the object at uri with data: bytes, or a binary stream read
        from its current position to its end. A write that fails raises StorageError and
        leaves the previous object, if any, in place."""
        if is_http(uri):
            raise _read_only(uri)
        if not is_s3(uri):
            self._write_local(local_path(uri), data)
            return
        from boto3.s3.transfer import TransferConfig

        location = parse_s3(uri)
        # The transfer manager: one PutObject up to part_size, else a multipart upload of
        # parts sent in parallel, completed last (that is when the object appears) and
        # aborted on any failure. No temporary object: nothing to copy, nothing left behind.
        config = TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=UPLOAD_THREADS,
        )
        # boto3 needs read() alone (its stubs ask for a whole IO); BytesIO shares the bytes.
        body = cast("IO[bytes]", io.BytesIO(data) if isinstance(data, bytes) else data)
        with _s3_errors(uri):
            try:
                self._s3().upload_fileobj(body, location.bucket, location.key, Config=config)
            except OSError as error:  # the source failed while being read
                raise StorageError(f"{uri}: {error}") from error

    @staticmethod
    def _write_local(path: Path, data: bytes | Readable) -> None:
        temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("wb") as handle:
                if isinstance(data, bytes):
                    handle.write(data)
                else:
                    shutil.copyfileobj(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException as error:  # the source or the disk failed, or an interrupt
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            if isinstance(error, OSError):
                raise StorageError(f"{path}: {error}") from error
            raise

    def delete(self, uri: str) -> None:
        if is_http(uri):
            raise _read_only(uri)
        if not is_s3(uri):
            local_path(uri).unlink(missing_ok=True)
            return
        location = parse_s3(uri)
        with _s3_errors(uri):
            self._s3().delete_object(Bucket=location.bucket, Key=location.key)

    def create(self, uri: str, data: bytes) -> bool:
        """Writes data at uri only if no object is there: True if it wrote, False if an
        object was there already (left as it was). Atomic: on a filesystem a hard link,
        which fails if the name exists; in S3 a PUT with If-None-Match: *. A store that
        does not implement conditional writes gets a check, then a PUT."""
        if is_http(uri):
            raise _read_only(uri)
        if not is_s3(uri):
            return self._create_local(local_path(uri), data)
        from botocore.exceptions import ClientError

        location = parse_s3(uri)
        with _s3_errors(uri):
            try:
                self._s3().put_object(
                    Bucket=location.bucket, Key=location.key, Body=data, IfNoneMatch="*"
                )
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                if code in ("PreconditionFailed", "412"):
                    return False
                if code not in ("NotImplemented", "501"):
                    raise
                if self.exists(uri):
                    return False
                self._s3().put_object(Bucket=location.bucket, Key=location.key, Body=data)
        return True

    @staticmethod
    def _create_local(path: Path, data: bytes) -> bool:
        temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)  # complete, or not there: never half a file
        except FileExistsError:
            return False
        except OSError as error:
            raise StorageError(f"{path}: {error}") from error
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
        return True

    def list(self, prefix: str, limit: int | None = None) -> list[str]:
        """URIs of the objects under a prefix (a folder for local paths), sorted; with a
        limit, at most that many (which ones is up to the store)."""
        if is_http(prefix):
            raise _read_only(prefix)
        if not is_s3(prefix):
            root = local_path(prefix)
            if not root.is_dir():
                return []
            files = (str(p) for p in root.rglob("*") if p.is_file())
            return sorted(itertools.islice(files, limit))
        location = parse_s3(prefix)
        found: list[str] = []
        with _s3_errors(prefix):
            paginator = self._s3().get_paginator("list_objects_v2")
            pages = paginator.paginate(
                Bucket=location.bucket,
                Prefix=location.key,
                PaginationConfig={"MaxItems": limit} if limit else {},
            )
            for page in pages:
                found.extend(
                    f"s3://{location.bucket}/{item['Key']}" for item in page.get("Contents", [])
                )
        return sorted(found[:limit])


class _s3_errors:
    """Turns botocore exceptions into ObjectNotFound or StorageError, naming the URI."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if error is None or isinstance(error, StorageError):
            return
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_CODES:
                raise ObjectNotFound(f"{self.uri}: {code}") from error
            raise StorageError(f"{self.uri}: {code or error}") from error
        if isinstance(error, BotoCoreError):
            raise StorageError(f"{self.uri}: {error}") from error
