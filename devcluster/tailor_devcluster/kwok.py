"""kwok: simulated GPU nodes and pod lifecycles on the local control plane."""

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kubernetes import client

from tailor_contract.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE
from tailor_devcluster.binaries import Binaries
from tailor_devcluster.controlplane import ControlPlane
from tailor_devcluster.ports import free_port
from tailor_devcluster.processes import Supervisor, answers_ok, wait_until

# kwok manages the nodes carrying this label; relabelling a node to "false"
# stops its heartbeat, which is how a test makes a node go silent.
MANAGED_LABEL = "kwok.tailor.dev/managed"
NODE_LEASE_SECONDS = 4


@dataclass(frozen=True)
class GpuNodeSpec:
    name: str
    product: str = "NVIDIA-A100-SXM4-80GB"
    gpus: int = 8
    cpu: str = "64"
    memory: str = "512Gi"


def stages_file() -> Path:
    return Path(str(resources.files("tailor_devcluster") / "kwok" / "stages.yaml"))


def start_kwok(
    supervisor: Supervisor,
    binaries: Binaries,
    plane: ControlPlane,
    lease_seconds: int = NODE_LEASE_SECONDS,
) -> None:
    """kwok renews each node's lease every `lease_seconds / 4`: one write per node per
    second by default, fine for a few nodes, most of two cores for hundreds."""
    address = f"127.0.0.1:{free_port()}"
    process = supervisor.start(
        "kwok",
        [
            str(binaries.kwok),
            f"--kubeconfig={plane.kubeconfig}",
            f"--config={stages_file()}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-label-selector={MANAGED_LABEL}=true",
            f"--node-lease-duration-seconds={lease_seconds}",
            "--cidr=10.244.0.0/16",
            "--node-ip=127.0.0.1",  # simulated nodes: nothing ever connects to it
            f"--server-address={address}",
        ],
    )
    wait_until("kwok /healthz", lambda: answers_ok(f"http://{address}/healthz"), 30, [process])


def node_manifest(spec: GpuNodeSpec) -> client.V1Node:
    capacity = {"cpu": spec.cpu, "memory": spec.memory, "pods": "110", GPU_RESOURCE: str(spec.gpus)}
    return client.V1Node(
        metadata=client.V1ObjectMeta(
            name=spec.name,
            labels={
                MANAGED_LABEL: "true",
                "type": "kwok",
                "kubernetes.io/hostname": spec.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                GPU_PRODUCT_LABEL: spec.product,
                "nvidia.com/gpu.count": str(spec.gpus),
            },
            annotations={"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
        ),
        status=client.V1NodeStatus(capacity=capacity, allocatable=capacity),
    )


def create_gpu_nodes(core: client.CoreV1Api, specs: list[GpuNodeSpec]) -> None:
    for spec in specs:
        core.create_node(node_manifest(spec))
