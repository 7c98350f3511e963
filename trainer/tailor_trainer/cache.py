"""A local disk cache in front of remote storage, so later epochs do not re-download."""

import hashlib
import os
import uuid
from pathlib import Path

from tailor_trainer.storage import Storage, is_s3

DEFAULT_CACHE_DIR = "/tmp/tailor-cache"


def default_cache_dir() -> Path:
    return Path(os.environ.get("TAILOR_CACHE_DIR", DEFAULT_CACHE_DIR))


class CachedReader:
    """Reads by URI; remote objects are kept on local disk after their first read.

    Local paths are read in place (a copy would only cost disk). Entries are keyed by
    the URI's digest and written by rename, so concurrent workers never read a
    partial file.
    """

    def __init__(self, storage: Storage, directory: Path | None) -> None:
        self.storage = storage
        self.directory = directory

    def _entry(self, uri: str) -> Path:
        assert self.directory is not None
        digest = hashlib.sha256(uri.encode()).hexdigest()
        return self.directory / digest[:2] / digest

    def read(self, uri: str) -> bytes:
        if self.directory is None or not is_s3(uri):
            return self.storage.read(uri)
        entry = self._entry(uri)
        try:
            return entry.read_bytes()
        except FileNotFoundError:
            pass
        data = self.storage.read(uri)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            temporary = entry.with_name(f"{entry.name}.{uuid.uuid4().hex}")
            temporary.write_bytes(data)
            os.replace(temporary, entry)
        except OSError:
            # A full or read-only cache disk slows training down; it must not stop it.
            pass
        return data
