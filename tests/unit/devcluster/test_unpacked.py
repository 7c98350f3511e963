"""The trainer image's unpacked root: later nodes start from a copy whose layers are
hard links, and nothing containerd writes in place is shared with the kept copy."""

import os
from pathlib import Path

from tailor_devcluster.unpacked import LAYERS, keep, shared_files, start_from, unpacked_root

DB = Path("io.containerd.metadata.v1.bolt") / "meta.db"
SNAPSHOTTER_DB = LAYERS.parent / "metadata.db"
LAYER_FILE = LAYERS / "1" / "fs" / "usr" / "lib" / "libtorch.so"


def containerd_root(at: Path) -> Path:
    """A root as containerd leaves it after importing one image."""
    for path, text in ((DB, "images"), (SNAPSHOTTER_DB, "snapshots"), (LAYER_FILE, "layer")):
        (at / path).parent.mkdir(parents=True, exist_ok=True)
        (at / path).write_text(text)
    os.symlink("libtorch.so", at / LAYER_FILE.with_name("libtorch.so.2"))
    return at


def test_a_node_starts_from_a_copy_sharing_only_its_layers(tmp_path):
    kept = tmp_path / "cache" / "containerd" / "key"
    keep(containerd_root(tmp_path / "first"), kept)
    root = tmp_path / "node" / "root"

    assert start_from(kept, root)

    # The layer is the same file (a hard link); the databases are copies.
    assert (root / LAYER_FILE).stat().st_ino == (kept / LAYER_FILE).stat().st_ino
    assert (root / LAYER_FILE.with_name("libtorch.so.2")).is_symlink()
    for db in (DB, SNAPSHOTTER_DB):
        assert (root / db).stat().st_ino != (kept / db).stat().st_ino
    # What the node's containerd writes stays in its root.
    (root / DB).write_text("images and a container")
    assert (kept / DB).read_text() == "images"
    # Nor did keeping share the first node's databases with the kept copy.
    (tmp_path / "first" / DB).write_text("changed later")
    assert (kept / DB).read_text() == "images"


def test_shared_files_are_everything_but_the_layers(tmp_path):
    root = containerd_root(tmp_path / "root")
    assert shared_files(root) == sorted([DB, SNAPSHOTTER_DB])


def test_without_a_kept_root_the_node_imports(tmp_path):
    assert not start_from(tmp_path / "nothing", tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_only_the_newest_unpacked_root_is_kept(tmp_path):
    older = tmp_path / "containerd" / "older"
    newer = tmp_path / "containerd" / "newer"
    keep(containerd_root(tmp_path / "a"), older)
    keep(containerd_root(tmp_path / "b"), newer)
    assert sorted(p.name for p in (tmp_path / "containerd").iterdir()) == ["newer"]


def test_the_kept_root_is_named_by_the_archive_and_containerd(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_IMAGE_CACHE", str(tmp_path / "images"))
    archive = Path("tailor-trainer-0.1.0-c68909acb6dc.tar")
    containerd = Path("/cache/bin/containerd-v2.4.1/containerd")
    named = unpacked_root(archive, containerd)
    assert named.parent == tmp_path / "containerd"
    assert named == unpacked_root(archive, containerd)
    assert named != unpacked_root(archive.with_name("tailor-trainer-0.1.0-0123.tar"), containerd)
    assert named != unpacked_root(archive, Path("/cache/bin/containerd-v2.5.0/containerd"))
