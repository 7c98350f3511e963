"""The trainer image, unpacked once for every real node that starts after it.

Importing the trainer image's docker-archive into containerd writes some 6 GB of layer
snapshots: about a minute at every node start, three starts in a test run. Instead the
first start keeps a copy of its containerd root holding just that image (an "unpacked
root", under ~/.cache/tailor/containerd/, named by the archive and the containerd
binary), and later nodes start from it: their root is a copy in which the committed
layers are hard links (seconds). That is safe because the overlay snapshotter only
reads a committed layer (a container writes to a snapshot of its own, and overlayfs
copies a file up before changing it); everything else in the root, containerd's
databases among it, is copied, since containerd writes those in place.

Only one unpacked root is kept (the newest); `tailor-cluster down` leaves it, like the
image archives and the Go binaries.
"""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from tailor_devcluster.images import cache_dir

# Where the overlay snapshotter keeps its layers, inside a containerd root.
LAYERS = Path("io.containerd.snapshotter.v1.overlayfs") / "snapshots"


def unpacked_roots_dir() -> Path:
    return cache_dir().parent / "containerd"


def unpacked_root(archive: Path, containerd: Path) -> Path:
    """Where the unpacked root for `archive` (named by its content) imported by
    `containerd` is kept, whether or not it exists yet."""
    key = hashlib.sha256(f"{archive.name}\n{containerd}".encode()).hexdigest()[:16]
    return unpacked_roots_dir() / key


def start_from(unpacked: Path, root: Path) -> bool:
    """Makes `root` (which must not exist) a copy of `unpacked`, its layers hard-linked;
    False when there is none to start from or the two are on different filesystems."""
    if not unpacked.is_dir():
        return False
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        _link_copy(unpacked, root)
    except (subprocess.CalledProcessError, OSError):
        shutil.rmtree(root, ignore_errors=True)
        return False
    return True


def keep(root: Path, unpacked: Path) -> None:
    """Keeps `root` (containerd stopped, only the image imported) as `unpacked`, and
    drops any other unpacked root. Nothing is kept when it cannot be linked."""
    partial = unpacked.with_name(unpacked.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        _link_copy(root, partial)
    except (subprocess.CalledProcessError, OSError):
        shutil.rmtree(partial, ignore_errors=True)
        return
    shutil.rmtree(unpacked, ignore_errors=True)
    partial.rename(unpacked)
    for other in unpacked.parent.iterdir():
        if other != unpacked:
            shutil.rmtree(other, ignore_errors=True)


def _link_copy(source: Path, target: Path) -> None:
    """`target` as a copy of `source`: layer files hard-linked, every other file copied."""
    # cp keeps owners, modes, times, symlinks, and overlayfs's whiteouts (device files).
    subprocess.run(
        ["cp", "--archive", "--link", str(source), str(target)],
        check=True,
        capture_output=True,
    )
    for name in shared_files(target):
        _unshare(target / name)


def shared_files(root: Path) -> list[Path]:
    """The regular files of `root` outside its layers, relative to it: those containerd
    may change in place, which a copy must not share with its source."""
    found: list[Path] = []
    layers = root / LAYERS
    for folder, folders, files in os.walk(root):
        here = Path(folder)
        if here == layers.parent and layers.name in folders:
            folders.remove(layers.name)
        for name in files:
            path = here / name
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(root))
    return sorted(found)


def _unshare(path: Path) -> None:
    copy = path.with_name(path.name + ".unshared")
    shutil.copy2(path, copy)
    os.replace(copy, path)
