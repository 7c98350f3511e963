"""A real node's configuration: its names and addresses, and the files containerd,
the CNI plugins and the kubelet read (pure: writing them starts nothing)."""

import json
from dataclasses import dataclass
from pathlib import Path

from tailor_contract.nodes import CPU_SLOT_PRODUCT
from tailor_devcluster.binaries import NodeBinaries
from tailor_devcluster.controlplane import SERVICE_CIDR, ControlPlane
from tailor_devcluster.images import PAUSE_IMAGE
from tailor_devcluster.kwok import NODE_LEASE_SECONDS
from tailor_devcluster.ports import free_port

BRIDGE = "tailor0"
# The bridge's address is the node's InternalIP (the kubelet refuses loopback) and the
# pods' subnet; the CNI plugins hand out addresses from .10 up.
NODE_IP = "10.244.0.1"
POD_SUBNET = "10.244.0.0/24"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
REAL_NODE_LABEL = "tailor.dev/real-node"
# Unix sockets take paths of at most 107 bytes, which a state folder deep in a test's
# temporary directory exceeds: containerd's state (its sockets, its shims') and the
# kubelet's root (pod-resources, device plugins) live at their usual short paths,
# which the machine must not be using already (they are removed at stop).
CONTAINERD_STATE = Path("/run/containerd")
KUBELET_ROOT = Path("/var/lib/kubelet")


@dataclass(frozen=True)
class RealNodeSpec:
    name: str = "tailor-node-0"
    gpu_slots: int = 2  # CPU-backed "GPU" slots, advertised as nvidia.com/gpu
    product: str = CPU_SLOT_PRODUCT


def cgroup_name(spec: RealNodeSpec) -> str:
    """The kubelet's cgroupRoot, created in every hierarchy before it starts."""
    return f"tailor-{spec.name}"


def write_cni_config(state: Path) -> Path:
    conf_dir = state / "cni" / "net.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conflist = {
        "cniVersion": "1.0.0",
        "name": "tailor",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                # The bridge is ours (with the node IP); no gateway, no masquerade, so
                # net.ipv4.ip_forward stays as it was.
                "isGateway": False,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "rangeStart": "10.244.0.10"}]],
                    # Service IPs through the node, where kube-proxy translates them to
                    # addresses on the bridge; no default route (nothing is forwarded).
                    "routes": [{"dst": SERVICE_CIDR, "gw": NODE_IP}],
                    "dataDir": str(state / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (conf_dir / "10-tailor.conflist").write_text(json.dumps(conflist, indent=2) + "\n")
    return conf_dir


def containerd_root(state: Path) -> Path:
    """The node's containerd root: its images' layers, containers' snapshots, databases."""
    return state / "containerd" / "root"


def write_containerd_config(state: Path, binaries: NodeBinaries, cni_conf: Path) -> Path:
    root = state / "containerd"
    root.mkdir(parents=True, exist_ok=True)
    config = f"""\
version = 4
root = "{containerd_root(state)}"
state = "{CONTAINERD_STATE}"

[grpc]

[plugins.'io.containerd.server.v1.grpc']
  address = "{CONTAINERD_STATE / "containerd.sock"}"

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.cri.v1.images']
  # Nothing can be pulled here: every image is imported, the pause image included.
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins.'io.containerd.cri.v1.runtime']
  # No CAP_SYS_RESOURCE here: containers may not get a lower oom_score_adj than ours.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{binaries.cni_dir}"]
    conf_dir = "{cni_conf}"
"""
    # `[grpc]` above is a v1 leftover some versions warn about: drop it.
    config = config.replace("[grpc]\n\n", "")
    path = root / "config.toml"
    path.write_text(config)
    return path


def write_kubelet_config(state: Path, plane: ControlPlane, spec: RealNodeSpec) -> Path:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # The 1.37 kubelet refuses cgroup v1 unless told; this machine has only v1.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{cgroup_name(spec)}",
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_STATE / 'containerd.sock'}",
        "address": NODE_IP,
        "port": free_port(),
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": free_port(),
        "resolvConf": "",
        # Nothing could be pulled again: never collect images.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(plane.pki.ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "failSwapOn": False,
        "podLogsDir": str(state / "pod-logs"),
        # A shared development machine: evict for nothing but a near-full disk.
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
        },
        "maxPods": 30,
        # The control plane calls a node lost after NODE_MONITOR_GRACE_SECONDS (8) without
        # a lease renewal; the kubelet renews every quarter of its lease, by default 40 s,
        # so its node went Unknown between renewals, and the operator settled an evicted
        # attempt before the kubelet's report of its exit ("no kubelet will report on a
        # lost node"). kwok's nodes renew as often.
        "nodeLeaseDurationSeconds": NODE_LEASE_SECONDS,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }
    path = state / "kubelet.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path
