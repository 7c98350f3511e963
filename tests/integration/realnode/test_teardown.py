"""`tailor-cluster down` after `up --real-nodes 1` leaves the machine as it was:
processes, mounts, cgroups, the bridge, iptables rules (both families), the nftables
tables they and kube-proxy needed, the kubelet's and kube-proxy's sysctls and the fixed
paths. (In its own
module: the bridge admits one real node at a time, and the other module's node is
stopped before this one starts.)"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tailor_devcluster.hostchanges import (
    FIXED_PATHS,
    cgroup_hierarchies,
    iptables_rules,
    nft_tables,
    node_sysctls,
    read_sysctl,
)
from tailor_devcluster.nodeconfig import BRIDGE

from .conftest import REAL_NODE, real_node_tests_enabled

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.real_node]


def machine_state() -> dict[str, object]:
    """What a real node may change, as seen from the machine's own namespaces."""
    mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    mounts = sorted(" ".join(line.split()[3:5]) for line in mountinfo)
    return {
        "sysctls": {name: read_sysctl(name) for name in node_sysctls()},
        "paths": [path for path in FIXED_PATHS if Path(path).exists()],
        "cgroups": [
            str(h / f"tailor-{REAL_NODE}")
            for h in cgroup_hierarchies(unified=True)
            if (h / f"tailor-{REAL_NODE}").exists()
        ],
        "bridge": Path("/sys/class/net", BRIDGE).exists(),
        "iptables": iptables_rules(),
        "nft tables": nft_tables(),
        "mounts": mounts,
    }


def node_processes() -> list[str]:
    """Live containerd, shim, runc, kubelet, kube-proxy and pause processes."""
    names = {
        "containerd",
        "containerd-shim",
        "containerd-shim-runc-v2",
        "runc",
        "kubelet",
        "kube-proxy",
        "pause",
    }
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if comm in names and state != "Z":
            found.append(f"{entry.name} {comm}")
    return found


def tailor_cluster(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor_devcluster.cli", "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_down_restores_everything_a_real_node_changed(tmp_path):
    real_node_tests_enabled()
    assert node_processes() == [], "a real node is running already"
    before = machine_state()
    state = tmp_path / "state"
    began = time.monotonic()
    up = tailor_cluster(state, "up", "--gpu-nodes", "0", "--real-nodes", "1")
    try:
        assert up.returncode == 0, up.stderr + (state / "cluster.log").read_text()
        print(f"up with a real node: {time.monotonic() - began:.1f}s")
        # The node really changed the machine (else this test would prove nothing) ...
        during = machine_state()
        assert during["bridge"] is True
        assert during["cgroups"]
        assert during["sysctls"] != before["sysctls"] or during["paths"] != before["paths"]
        assert "ip kube-proxy" in nft_tables()
        assert node_processes()
        # ... while its mounts stayed in its own namespace.
        assert during["mounts"] == before["mounts"]
    finally:
        down = tailor_cluster(state, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert node_processes() == []
    assert machine_state() == before
