"""Container images for real nodes, built here with buildah: no registry is reachable.

A base image is made locally (debootstrap of Debian with python3), then the
Dockerfiles under docker/ are built unchanged on top of it with `--isolation chroot
--pull=never`. Each image is saved as a docker-archive under
~/.cache/tailor/images, named by a digest of everything that goes into it, so an
unchanged image is never rebuilt; containerd imports the archives.

buildah keeps its own storage under that cache folder (vfs driver), not in
/var/lib/containers.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tailor_devcluster.binaries import MissingBinary, repo_root
from tailor_devcluster.diskguard import GIB, DiskGuard

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates")
BASE_IMAGE = "localhost/tailor/python-base:bookworm"
PAUSE_IMAGE = "localhost/tailor/pause:1"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
OPERATOR_IMAGE = "ghcr.io/tailor-dev/tailor-operator:0.1.0"
TRAINER_IMAGE = "ghcr.io/tailor-dev/tailor-trainer:0.1.0"
# The files docker/operator.Dockerfile and docker/trainer.Dockerfile copy (their
# .dockerignore files keep only these): an image's cache key. The trainer image holds
# the trainer's packages only, so a change elsewhere does not cost its 6 GB rebuild.
OPERATOR_INPUTS = (
    "pyproject.toml",
    "README.md",
    "requirements.lock",
    "operator",
    "trainer",
    "contract",
    "devcluster",
)
TRAINER_INPUTS = ("pyproject.toml", "requirements.lock", "trainer", "contract")

# The pause process every pod's sandbox runs: waits for a signal, reaps orphans.
_PAUSE_C = r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int signal) { (void)signal; _exit(0); }
static void reap(int signal) { (void)signal; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction quit = {.sa_handler = stop}, child = {.sa_handler = reap};
    sigaction(SIGINT, &quit, NULL);
    sigaction(SIGTERM, &quit, NULL);
    child.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &child, NULL);
    for (;;) pause();
}
"""


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(os.environ.get("TAILOR_IMAGE_CACHE", Path(root) / "tailor" / "images"))


@dataclass(frozen=True)
class BuiltImage:
    name: str
    archive: Path  # a docker-archive containerd can import
    build_seconds: float  # 0 when it came from the cache


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(hashlib.sha256(part).digest())
    return hasher.hexdigest()[:12]


def _tree_digest(root: Path, names: tuple[str, ...]) -> bytes:
    """The content of the files under `names` that git does not ignore (what the build
    copies, uncommitted changes included)."""
    listed = subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            *names,
        ],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    hasher = hashlib.sha256()
    for name in sorted(filter(None, listed)):
        path = root / name.decode()
        hasher.update(name + b"\0")  # a deleted but still tracked file reads as absent
        if path.is_file():
            hasher.update(path.read_bytes())
    return hasher.digest()


def _need(command: str, package: str) -> str:
    found = shutil.which(command)
    if found is None:
        raise MissingBinary(f"{command} is missing: apt-get install {package}")
    return found


def _run(argv: list[str], what: str, cwd: Path | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}):\n{result.stdout[-3000:]}"
            f"\n{result.stderr[-3000:]}"
        )


class ImageBuilder:
    """buildah with storage of its own under the image cache."""

    def __init__(self, cache: Path | None = None) -> None:
        self.cache = cache or cache_dir()
        self.buildah = _need("buildah", "buildah")

    def _buildah(self, *args: str) -> list[str]:
        storage = self.cache / "storage"
        return [
            self.buildah,
            f"--root={storage / 'root'}",
            f"--runroot={storage / 'run'}",
            "--storage-driver=vfs",
            *args,
        ]

    def _build(
        self,
        name: str,
        dockerfile: Path,
        context: Path,
        key: str,
        build_args: dict[str, str],
        guard: DiskGuard | None = None,
        keep_in_storage: bool = True,
    ) -> BuiltImage:
        """Builds `dockerfile` as `name` unless an archive for `key` exists; with a
        `guard`, every step stops before the disk's free space falls below its floor."""
        slug = _slug(name)
        archive = self.cache / f"{slug}-{key}.tar"
        if archive.is_file():
            return BuiltImage(name, archive, 0.0)
        began = time.monotonic()
        self.cache.mkdir(parents=True, exist_ok=True)

        def run(argv: list[str], what: str) -> None:
            if guard is None:
                _run(argv, what)
            else:
                guard.run(argv, what)

        argv = self._buildah(
            "build",
            "--isolation=chroot",
            "--pull=never",
            "--layers=false",
            "--force-rm",  # a failed build leaves no working container (a copy of it all)
            f"--file={dockerfile}",
            f"--tag={name}",
        )
        ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
        if ignore.is_file():
            argv.append(f"--ignorefile={ignore}")
        for arg, value in build_args.items():
            argv.append(f"--build-arg={arg}={value}")
        try:
            run([*argv, str(context)], f"buildah build {name}")
            partial = archive.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            run(
                self._buildah("push", name, f"docker-archive:{partial}:{name}"),
                f"buildah push {name}",
            )
        except BaseException:
            archive.with_suffix(".partial").unlink(missing_ok=True)
            subprocess.run(self._buildah("rm", "--all"), capture_output=True, check=False)
            subprocess.run(self._buildah("rmi", "--prune"), capture_output=True, check=False)
            raise
        partial.rename(archive)
        # Keep the newest build only: archives of earlier inputs, and the images in
        # buildah's storage that lost their tag to this one.
        for stale in self.cache.glob(f"{slug}-*.tar"):
            if stale != archive:
                stale.unlink()
        subprocess.run(self._buildah("rmi", "--prune"), capture_output=True, check=False)
        if not keep_in_storage:
            # Nothing builds FROM it: the archive is the one copy worth its disk.
            subprocess.run(self._buildah("rmi", name), capture_output=True, check=False)
        return BuiltImage(name, archive, time.monotonic() - began)

    # -- the images ------------------------------------------------------------

    def base_rootfs(self) -> Path:
        """A tarball of a minimal Debian with python3 and pip (debootstrap, cached)."""
        key = _digest(DEBIAN_SUITE.encode(), " ".join(BASE_PACKAGES).encode())
        tarball = self.cache / f"rootfs-{DEBIAN_SUITE}-{key}.tar"
        if tarball.is_file():
            return tarball
        debootstrap = _need("debootstrap", "debootstrap")
        self.cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache) as work:
            rootfs = Path(work) / "rootfs"
            _run(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    DEBIAN_SUITE,
                    str(rootfs),
                    DEBIAN_MIRROR,
                ],
                "debootstrap",
            )
            # Like python:*-slim: pip installs into /usr/local without complaint.
            for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
                marker.unlink()
            shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
            shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
            partial = tarball.with_suffix(".partial")
            _run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], "tar of the base rootfs")
            partial.rename(tarball)
        return tarball

    def base_image(self) -> BuiltImage:
        """The base image, named as the Dockerfiles are told (PYTHON_IMAGE). It trusts the
        machine's certificate authorities: builds reach PyPI through this machine's
        network, which may present its own CA."""
        rootfs = self.base_rootfs()
        with tempfile.TemporaryDirectory(dir=self.cache) as work:
            context = Path(work)
            containerfile = context / "Containerfile"
            containerfile.write_text(
                "FROM scratch\nADD rootfs.tar /\n"
                f"COPY ca-certificates.crt {HOST_CA_BUNDLE}\n"
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                'CMD ["python3"]\n'
            )
            shutil.copyfile(HOST_CA_BUNDLE, context / "ca-certificates.crt")
            key = _digest(
                rootfs.name.encode(),
                containerfile.read_bytes(),
                (context / "ca-certificates.crt").read_bytes(),
            )
            cached = self.cache / f"python-base-bookworm-{key}.tar"
            if cached.is_file():
                return BuiltImage(BASE_IMAGE, cached, 0)
            os.link(rootfs, context / "rootfs.tar")
            return self._build(BASE_IMAGE, containerfile, context, key, {})

    def pause_image(self) -> BuiltImage:
        key = _digest(_PAUSE_C.encode())
        if (self.cache / f"pause-1-{key}.tar").is_file():
            return BuiltImage(PAUSE_IMAGE, self.cache / f"pause-1-{key}.tar", 0)
        self.cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache) as work:
            context = Path(work)
            (context / "pause.c").write_text(_PAUSE_C)
            _run(
                [_need("gcc", "gcc"), "-static", "-Os", "-o", "pause", "pause.c"],
                "gcc pause.c",
                cwd=context,
            )
            containerfile = context / "Containerfile"
            containerfile.write_text(
                'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n'
            )
            return self._build(PAUSE_IMAGE, containerfile, context, key, {})

    def _on_base(self, dockerfile: Path, image: str, inputs: tuple[str, ...]) -> str:
        """The cache key of `dockerfile` built on the local base image (the base, the
        Dockerfile, its ignore file and the project's files it copies, `inputs`); when
        no archive has that key, the base is pulled into buildah's storage, which
        buildah builds FROM."""
        base = self.base_image()
        key = _digest(
            base.archive.name.encode(),
            dockerfile.read_bytes(),
            dockerfile.with_name(dockerfile.name + ".dockerignore").read_bytes(),
            _tree_digest(repo_root(), inputs),
        )
        if not (self.cache / f"{_slug(image)}-{key}.tar").is_file():
            _run(
                self._buildah("pull", f"docker-archive:{base.archive}"),
                "buildah pull of the base image",
            )
        return key

    def operator_image(self) -> BuiltImage:
        """docker/operator.Dockerfile, unchanged, on the local base image."""
        root = repo_root()
        dockerfile = root / "docker" / "operator.Dockerfile"
        key = self._on_base(dockerfile, OPERATOR_IMAGE, OPERATOR_INPUTS)
        return self._build(OPERATOR_IMAGE, dockerfile, root, key, {"PYTHON_IMAGE": BASE_IMAGE})

    def trainer_image(self, guard: DiskGuard | None = None) -> BuiltImage:
        """docker/trainer.Dockerfile, unchanged, on the local base image instead of
        NVIDIA's CUDA base (which cannot be pulled here; torch's wheels bring their own
        CUDA libraries): about 6 GB, built under a disk floor (diskguard.py)."""
        root = repo_root()
        dockerfile = root / "docker" / "trainer.Dockerfile"
        key = self._on_base(dockerfile, TRAINER_IMAGE, TRAINER_INPUTS)
        self.cache.mkdir(parents=True, exist_ok=True)
        guard = guard or DiskGuard(self.cache)
        return self._build(
            TRAINER_IMAGE,
            dockerfile,
            root,
            key,
            {"CUDA_IMAGE": BASE_IMAGE},
            guard=guard,
            keep_in_storage=False,
        )

    def newest_trainer_image(self) -> BuiltImage | None:
        """The trainer image last built, whatever its inputs were (one is kept): a real
        node loads it rather than spend minutes and 6 GB of copies at every start;
        `tailor-cluster images --trainer` brings it up to date."""
        found = sorted(
            self.cache.glob(f"{_slug(TRAINER_IMAGE)}-*.tar"), key=lambda p: p.stat().st_mtime
        )
        return BuiltImage(TRAINER_IMAGE, found[-1], 0.0) if found else None


def build_all(trainer: bool = False) -> int:
    """`tailor-cluster images`: build (or find cached) the real node's images; the
    trainer image (about 6 GB) only when asked."""
    builder = ImageBuilder()
    builds = [builder.pause_image, builder.base_image, builder.operator_image]
    builder.cache.mkdir(parents=True, exist_ok=True)
    guard = DiskGuard(builder.cache)
    if trainer:
        builds.append(lambda: builder.trainer_image(guard))
    for build in builds:
        began = time.monotonic()
        image = build()
        state = "built" if image.build_seconds else "cached"
        size = image.archive.stat().st_size / 2**20
        print(
            f"{image.name}: {state} in {time.monotonic() - began:.1f}s, "
            f"{size:.0f} MiB ({image.archive})",
            flush=True,
        )
    if trainer and guard.lowest_free is not None:
        print(f"lowest free disk space during the build: {guard.lowest_free / GIB:.1f} GiB")
    return 0


def _slug(image: str) -> str:
    """The archive's file-name prefix for an image: its last path part, ':' as '-'."""
    return image.rsplit("/", 1)[-1].replace(":", "-")
