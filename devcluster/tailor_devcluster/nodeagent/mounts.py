"""Volumes without a container runtime: each volume is a folder of the pod, and the
container's paths are rewritten to point into it.

A process cannot be given its own filesystem here, so the agent rewrites what it
can see: command-line words and environment values that name a path under a
mount (/etc/tailor/trial.json -> <pod>/volumes/config/trial.json, also in
--flag=/path form), plus a few variables programs read for well-known paths
(TMPDIR for /tmp; the trainer's TAILOR_TERMINATION_LOG and TAILOR_CACHE_DIR).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tailor_devcluster.nodeagent.env import ContainerConfigError

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
TERMINATION_LOG_ENV = "TAILOR_TERMINATION_LOG"
# Variables set when a container path is mounted: (variable, path below the mount).
PATH_HINTS: dict[str, tuple[tuple[str, str], ...]] = {
    "/tmp": (("TMPDIR", ""), ("TAILOR_CACHE_DIR", "tailor-cache")),
}
SUPPORTED_VOLUMES = ("configMap", "secret", "emptyDir", "projected", "downwardAPI")


class MountError(ContainerConfigError):
    """A volume the agent cannot provide (yet); the kubelet would keep retrying."""

    reason = "ContainerCreating"


@dataclass(frozen=True)
class Mount:
    container_path: str
    host_path: Path
    volume: str
    read_only: bool = False


def volume_folder(pod_dir: Path, volume: str) -> Path:
    return pod_dir / "volumes" / volume


def plan_mounts(pod: Mapping[str, Any], container: Mapping[str, Any], pod_dir: Path) -> list[Mount]:
    """Where each of the container's volume mounts lives on this machine."""
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts: list[Mount] = []
    for item in container.get("volumeMounts") or []:
        name = item["name"]
        volume = volumes.get(name)
        if volume is None:
            raise MountError(f"volumeMount {name!r} names no volume of the pod")
        kind = next((k for k in SUPPORTED_VOLUMES if k in volume), None)
        if kind is None:
            others = sorted(k for k in volume if k != "name")
            raise MountError(
                f"volume {name!r}: the node agent supports {', '.join(SUPPORTED_VOLUMES)} "
                f"volumes, not {', '.join(others) or 'this kind'}"
            )
        host = volume_folder(pod_dir, name)
        if item.get("subPath"):
            host = host / item["subPath"]
        mounts.append(
            Mount(
                container_path=str(PurePosixPath(item["mountPath"])),
                host_path=host,
                volume=name,
                read_only=bool(item.get("readOnly")),
            )
        )
    return mounts


def map_path(path: str, mounts: Sequence[Mount]) -> str:
    """The host path for a container path under a mount (the deepest mount wins);
    anything else unchanged."""
    if not path.startswith("/"):
        return path
    candidate = PurePosixPath(path)
    containing = [
        mount
        for mount in mounts
        if candidate == PurePosixPath(mount.container_path)
        or PurePosixPath(mount.container_path) in candidate.parents
    ]
    if not containing:
        return path
    best = max(containing, key=lambda mount: len(PurePosixPath(mount.container_path).parts))
    relative = candidate.relative_to(PurePosixPath(best.container_path))
    return str(best.host_path / relative) if relative.parts else str(best.host_path)


def map_word(word: str, mounts: Sequence[Mount]) -> str:
    """A command-line word: a path, or --flag=path."""
    if word.startswith("/"):
        return map_path(word, mounts)
    flag, equals, value = word.partition("=")
    if equals and value.startswith("/"):
        return f"{flag}={map_path(value, mounts)}"
    return word


def map_argv(argv: Sequence[str], mounts: Sequence[Mount]) -> list[str]:
    return [map_word(word, mounts) for word in argv]


def map_env(env: Mapping[str, str], mounts: Sequence[Mount]) -> dict[str, str]:
    """Path values rewritten, plus the hint variables of mounted well-known paths
    (never overriding what the pod set itself)."""
    mapped = {name: map_word(value, mounts) for name, value in env.items()}
    for mount in mounts:
        for variable, below in PATH_HINTS.get(mount.container_path, ()):
            if variable not in env:
                mapped[variable] = str(mount.host_path / below) if below else str(mount.host_path)
    return mapped


def termination_file(pod_dir: Path) -> Path:
    return pod_dir / "termination-log"
