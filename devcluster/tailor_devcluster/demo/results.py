"""What the demo takes home: the exported bundle, copied out of MinIO, and a few
held-out digits to classify with it."""

import shutil
from pathlib import Path

from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.demo.digits import CocoDataset


def download_model(cluster: LocalCluster, uri: str, folder: Path) -> Path:
    assert cluster.s3 is not None
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = cluster.s3.client()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    prefix = prefix.rstrip("/") + "/"
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    for item in listing.get("Contents", []):
        path = folder / item["Key"].removeprefix(prefix)  # report/*.png keep their folder
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, item["Key"], str(path))
    return folder


def save_samples(dataset: CocoDataset, folder: Path, count: int) -> list[Path]:
    """A few held-out images (never trained on, never selected by), named by their true
    class."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    files = dataset.held_out_files() or dataset.evaluation_files()
    chosen: list[str] = []
    for name in files:  # one of each class, the first classes first
        if dataset.labels[name] not in {dataset.labels[c] for c in chosen}:
            chosen.append(name)
        if len(chosen) == count:
            break
    paths = []
    for name in chosen:
        path = folder / f"true-{dataset.labels[name]}_{Path(name).stem}.png"
        path.write_bytes(dataset.images[name])
        paths.append(path)
    return paths
