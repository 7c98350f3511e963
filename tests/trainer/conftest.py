"""Fixtures of the trainer tests: generated datasets on local disk and in MinIO."""

import json
import os
from pathlib import Path

# One intra-op thread: these models are tiny, and on a shared 2-core machine two OpenMP
# threads spinning against other work made a 3-second run take 70 (measured).
# Set before torch is imported, and inherited by the trainer processes tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from tailor_trainer.storage import Storage
from tailor_trainer.synthetic import SyntheticSpec, build, write


class LocalDataset:
    """A generated COCO dataset in a folder, with helpers to damage it on purpose."""

    def __init__(self, root: Path, spec: SyntheticSpec) -> None:
        self.root = root
        self.spec = spec
        self.document, files = build(spec)
        for relative, data in files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(data)
        self.save()

    @property
    def annotations(self) -> str:
        return str(self.root / "train.json")

    def save(self, name: str = "train.json") -> str:
        (self.root / name).write_text(json.dumps(self.document))
        return str(self.root / name)

    def image_path(self, position: int) -> Path:
        return self.root / str(self.document["images"][position]["file_name"])


@pytest.fixture
def local_dataset(tmp_path: Path) -> LocalDataset:
    return LocalDataset(tmp_path / "data", SyntheticSpec(classes=3, images_per_class=4))


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("TAILOR_TERMINATION_LOG", str(path))
    return path


@pytest.fixture
def s3_storage(s3, monkeypatch: pytest.MonkeyPatch) -> Storage:
    """A Storage for the MinIO server, configured the way a trial pod is: by environment."""
    for key, value in s3.environment().items():
        monkeypatch.setenv(key, value)
    return Storage()


@pytest.fixture
def s3_dataset(s3_storage: Storage, bucket: str) -> str:
    """A generated classification dataset in a fresh bucket; its annotation URI."""
    return write(s3_storage, f"s3://{bucket}/data", SyntheticSpec(classes=3, images_per_class=4))
