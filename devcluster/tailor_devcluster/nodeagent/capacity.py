"""What the agent's node offers: real CUDA devices when there are any, else a declared
number of CPU-backed "GPU" slots under a product name of their own, which the
calibration table prices like any other GPU product."""

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailor_contract.nodes import CPU_SLOT_PRODUCT, GPU_PRODUCT_LABEL, GPU_RESOURCE

GPU_COUNT_LABEL = "nvidia.com/gpu.count"
AGENT_LABEL = "tailor.dev/node-agent"
AGENT_VERSION = "tailor-node-agent/0.1"
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Devices:
    product: str  # the value of nvidia.com/gpu.product
    count: int
    cuda: bool  # True: CUDA device indices 0..count-1; False: CPU-backed slots


def product_label(device_name: str) -> str:
    """A device name as gpu-feature-discovery labels it: "NVIDIA H100 80GB HBM3" ->
    "NVIDIA-H100-80GB-HBM3" (a valid label value: at most 63 characters)."""
    label = _LABEL_UNSAFE.sub("-", device_name.strip()).strip("-_.")
    return label[:63].rstrip("-_.") or "unknown-gpu"


def _cuda_devices() -> Devices | None:
    # Importing torch costs seconds; a machine without the NVIDIA driver has no devices.
    if not Path("/proc/driver/nvidia").exists():
        return None
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        return None
    return Devices(
        product=product_label(torch.cuda.get_device_name(0)),
        count=torch.cuda.device_count(),
        cuda=True,
    )


def detect_devices(cpu_slots: int, use_cuda: bool = True) -> Devices:
    """CUDA devices when present (and wanted), else `cpu_slots` CPU-backed slots."""
    found = _cuda_devices() if use_cuda else None
    if found is not None:
        return found
    if cpu_slots < 1:
        raise ValueError(f"no CUDA device found and cpu_slots={cpu_slots}: declare at least 1")
    return Devices(product=CPU_SLOT_PRODUCT, count=cpu_slots, cuda=False)


def machine_memory_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise OSError("MemTotal missing from /proc/meminfo")


def allocatable(devices: Devices, cpus: int, memory_bytes: int) -> dict[str, float]:
    return {
        "cpu": float(cpus),
        "memory": float(memory_bytes),
        "pods": 110.0,
        GPU_RESOURCE: float(devices.count),
    }


def node_manifest(
    name: str, devices: Devices, cpus: int, memory_bytes: int, now: str
) -> dict[str, Any]:
    """The Node as the agent registers it: labels, capacity and a Ready condition."""
    capacity = {
        "cpu": str(cpus),
        "memory": str(memory_bytes),
        "pods": "110",
        GPU_RESOURCE: str(devices.count),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": _arch(),
                AGENT_LABEL: "true",
                GPU_PRODUCT_LABEL: devices.product,
                GPU_COUNT_LABEL: str(devices.count),
            },
        },
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": node_conditions(now),
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "architecture": _arch(),
                "operatingSystem": "linux",
                "kernelVersion": platform.release(),
                "osImage": platform.platform(),
                "kubeletVersion": AGENT_VERSION,
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "local-process://" + platform.python_version(),
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


def node_conditions(now: str, since: str | None = None) -> list[dict[str, str]]:
    """Ready since `since` (default now), and none of the pressures: the agent does
    not measure them."""

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": since or now,
        }

    return [
        condition("Ready", "True", "KubeletReady", "the Tailor node agent is running pods"),
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "not measured"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "not measured"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "not measured"),
    ]


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def machine_cpus() -> int:
    return os.cpu_count() or 1
