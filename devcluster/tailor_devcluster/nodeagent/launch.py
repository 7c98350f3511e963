"""From a pod's container to the command line, environment and folder of a process.

The image is not pulled or run: its command is looked up in the agent's `bin_dir`
first (the checkout's virtual environment, where `tailor-train` lives), then in
the usual system folders.
"""

import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailor_devcluster.nodeagent.admission import parse_quantity
from tailor_devcluster.nodeagent.env import ContainerConfigError, Lookups, expand, resolve_env
from tailor_devcluster.nodeagent.mounts import (
    DEFAULT_TERMINATION_PATH,
    TERMINATION_LOG_ENV,
    Mount,
    map_argv,
    map_env,
    map_path,
    plan_mounts,
    termination_file,
)
from tailor_devcluster.nodeagent.shorttmp import shorten_tmpdir
from tailor_devcluster.nodeagent.volumes import materialize

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


class ContainerCreateError(ContainerConfigError):
    """The command cannot be run (no command, or no such program)."""

    reason = "CreateContainerError"


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    termination_file: Path
    mounts: tuple[Mount, ...]


def container_of(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or []
    if len(containers) != 1:
        raise ContainerCreateError(
            f"the node agent runs pods of exactly one container, not {len(containers)}"
        )
    if (pod.get("spec") or {}).get("initContainers"):
        raise ContainerCreateError("the node agent does not run init containers")
    return containers[0]  # type: ignore[no-any-return]


def command_line(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """command + args with $(VAR) references expanded, as the kubelet does."""
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    if not container.get("command"):
        raise ContainerCreateError(
            "the node agent runs no images: the container needs an explicit command"
        )
    return [expand(str(word), env) for word in words]


def device_env(cuda: bool, devices: Sequence[int]) -> dict[str, str]:
    """Only the devices allocated to the pod are visible; CPU slots hide any GPU."""
    return {"CUDA_VISIBLE_DEVICES": ",".join(str(d) for d in devices) if cuda else ""}


def cpu_threads(container: Mapping[str, Any]) -> dict[str, str]:
    """OMP_NUM_THREADS from the CPU limit (else request), rounded up: no cgroup quota
    holds the process to its share here, and OpenMP threads spinning on a busy machine
    cost far more than they give. Nothing without a CPU request or limit."""
    resources = container.get("resources") or {}
    cpu = (resources.get("limits") or {}).get("cpu") or (resources.get("requests") or {}).get("cpu")
    if cpu is None:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, math.ceil(parse_quantity(cpu))))}


def build_environment(
    resolved: Mapping[str, str],
    mounts: Sequence[Mount],
    pod_dir: Path,
    bin_dir: Path,
    devices: Mapping[str, str],
    limits: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A clean environment (nothing leaks from the agent's own), the pod's variables
    with container paths mapped, and where the termination message goes."""
    env = {"PATH": f"{bin_dir}:{SYSTEM_PATH}", "HOME": str(pod_dir), "LANG": "C.UTF-8"}
    env.update(limits or {})
    env.update(map_env(resolved, mounts))
    env[TERMINATION_LOG_ENV] = str(termination_file(pod_dir))
    env.update(devices)
    return env


def resolve_program(argv: list[str], path: str) -> list[str]:
    program = argv[0]
    if "/" in program:
        return argv
    found = shutil.which(program, path=path)
    if found is None:
        raise ContainerCreateError(f'exec: "{program}": executable file not found in $PATH')
    return [found, *argv[1:]]


def prepare(
    pod: Mapping[str, Any],
    pod_dir: Path,
    bin_dir: Path,
    lookups: Lookups,
    devices: Mapping[str, str],
) -> Launch:
    """Everything a start needs; raises ContainerConfigError (or a subclass) with the
    kubelet's reason when the pod cannot start yet."""
    container = container_of(pod)
    resolved = resolve_env(pod, container, lookups)
    mounts = plan_mounts(pod, container, pod_dir)
    termination_path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
    # The termination file is one more "mount": a word naming it is rewritten too.
    all_mounts = [*mounts, Mount(termination_path, termination_file(pod_dir), "termination")]
    env = build_environment(resolved, mounts, pod_dir, bin_dir, devices, cpu_threads(container))
    argv = map_argv(command_line(container, resolved), all_mounts)
    argv = resolve_program(argv, env["PATH"])
    materialize(pod, mounts, pod_dir, lookups)
    shorten_tmpdir(env, str((pod.get("metadata") or {}).get("uid", "")))
    working = container.get("workingDir")
    cwd = Path(map_path(working, mounts)) if working else pod_dir
    if not cwd.is_dir():
        cwd = pod_dir
    return Launch(argv, env, cwd, termination_file(pod_dir), tuple(mounts))
