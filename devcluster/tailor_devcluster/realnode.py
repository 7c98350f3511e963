"""A real node: containerd, runc, the CNI plugins and the kubelet on this machine.

Pods on it run as containers of images built here (images.py), with real memory
limits, users, seccomp, logs and exec. containerd and the kubelet share a mount and
PID namespace of their own (`unshare`): the mounts they make are invisible to the
machine and vanish with the namespace; killing its first process kills every
container and shim in it.

Needs root. What it changes on the machine (three sysctls the kubelet sets, a bridge,
cgroups, fixed paths, iptables chains, kube-proxy's nftables tables) is recorded first
(`prepare_host`, before the cluster's servers start: the API server and MinIO listen on
the bridge) and restored by the cluster at stop (hostchanges.py).

Its names, addresses and configuration files are in nodeconfig.py. Pods reach the API
server as real clusters' pods do: the `kubernetes` Service's cluster IP, which
kube-proxy (kubeproxy.py) translates to the API server on the bridge; their one route
beyond the bridge is the Service range, through the node. MinIO they reach on the
bridge itself.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from tailor_contract.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE
from tailor_devcluster.binaries import NodeBinaries
from tailor_devcluster.controlplane import ControlPlane
from tailor_devcluster.hostchanges import HostRecord, cgroup_hierarchies
from tailor_devcluster.kubeconfig import write_kubeconfig
from tailor_devcluster.kubeproxy import (
    KUBE_PROXY_USER,
    synced,
    tool_dir,
    write_kube_proxy_config,
)
from tailor_devcluster.nodeconfig import (
    BRIDGE,
    CONTAINERD_STATE,
    GPU_COUNT_LABEL,
    KUBELET_ROOT,
    NODE_IP,
    POD_SUBNET,
    REAL_NODE_LABEL,
    RealNodeSpec,
    cgroup_name,
    containerd_root,
    write_cni_config,
    write_containerd_config,
    write_kubelet_config,
)
from tailor_devcluster.pki import issue_client_cert
from tailor_devcluster.ports import free_port
from tailor_devcluster.processes import ManagedProcess, ProcessFailed, Supervisor, wait_until
from tailor_devcluster.unpacked import keep, start_from, unpacked_root

RECORD_FILE = "host-record.json"
GARBAGE_TAG = "localhost/tailor/collect-garbage:now"


@dataclass
class RealNode:
    spec: RealNodeSpec
    state_dir: Path
    binaries: NodeBinaries
    holder: ManagedProcess
    namespace_pid: int  # the first process inside the namespace
    ready_seconds: float = 0.0
    images_seconds: float = 0.0  # from the start until every image was in containerd
    reused_unpacked: bool = False  # the trainer image came from its unpacked root

    @property
    def socket(self) -> Path:
        return CONTAINERD_STATE / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 300) -> "subprocess.CompletedProcess[str]":
        """ctr in the node's namespaces, on the kubelet's (k8s.io) containerd namespace."""
        argv = [
            *self.enter(),
            str(self.binaries.ctr),
            f"--address={self.socket}",
            "--namespace=k8s.io",
            *args,
        ]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True)

    def enter(self) -> list[str]:
        """The argv prefix that runs a command in the node's mount and PID namespace."""
        # By its full path: kube-proxy runs with a PATH of its own (kubeproxy.py).
        nsenter = shutil.which("nsenter") or "nsenter"
        return [nsenter, f"--target={self.namespace_pid}", "--mount", "--pid", "--"]

    def load_image(self, archive: Path) -> None:
        # Unpacked into snapshots, the layer blobs are a second copy: let them go (the
        # trainer image's are some 6 GB). Nothing here pulls, so nothing needs them.
        # (ctr offers that only when it imports itself, not through containerd's
        # transfer service: --local.)
        self.ctr(
            "images", "import", "--local", "--discard-unpacked-layers", str(archive), timeout=900
        )

    def collect_garbage(self) -> None:
        """Has containerd delete the layer blobs an import discarded (some 6 GB for the
        trainer image): its garbage collector runs at once only for a synchronous delete,
        here of a throwaway tag."""
        names = self.ctr("images", "ls", "--quiet").stdout.split()
        if names:
            self.ctr("images", "tag", "--force", names[0], GARBAGE_TAG)
            self.ctr("images", "rm", "--sync", GARBAGE_TAG)


def record_path(state_dir: Path) -> Path:
    return state_dir / RECORD_FILE


def restore_host(state_dir: Path) -> list[str]:
    """Restores what a node under `state_dir` changed, if it left a record; returns
    what could not be restored. Used when its supervisor could not (it was killed)."""
    path = record_path(state_dir)
    if not path.is_file():
        return []
    left = HostRecord.load(path).restore()
    if not left:
        path.unlink()
    return left


def _create_bridge() -> None:
    subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)


def _create_cgroups(name: str) -> None:
    """The kubelet's cgroupRoot must exist in every v1 hierarchy before it starts."""
    for hierarchy in cgroup_hierarchies():
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        # A new cpuset is empty: it needs its parent's CPUs and memory nodes.
        for setting in ("cpuset.cpus", "cpuset.mems"):
            if (path / setting).exists() and not (path / setting).read_text().strip():
                (path / setting).write_text((hierarchy / setting).read_text())


def _node_ready(core: client.CoreV1Api, name: str) -> bool:
    conditions = core.read_node(name).status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _namespace_pid(holder: ManagedProcess) -> int:
    """The pid of unshare's child: the namespace's first process."""
    children = Path(f"/proc/{holder.popen.pid}/task/{holder.popen.pid}/children")
    text = children.read_text().split()
    if not text:
        raise ProcessFailed("unshare has not started its child yet")
    return int(text[0])


def prepare_host(state: Path, spec: RealNodeSpec) -> HostRecord:
    """Records the machine, then creates the node's bridge (with NODE_IP), so that the
    cluster's servers can listen there before the node starts. The caller restores the
    record (`HostRecord.restore`) whatever happens next."""
    if os.geteuid() != 0:
        raise ProcessFailed("a real node needs root (containerd, runc, cgroups, a bridge)")
    if Path("/sys/class/net", BRIDGE).exists():
        raise ProcessFailed(f"network link {BRIDGE} exists: is another real node running?")
    for path in (CONTAINERD_STATE, KUBELET_ROOT):
        if path.exists():
            raise ProcessFailed(f"{path} exists: is a containerd or a kubelet running here?")
    state.mkdir(parents=True, exist_ok=True)
    record = HostRecord.take(cgroup_name(spec), BRIDGE)
    record.save(record_path(state))
    try:
        _create_bridge()
    except BaseException:
        record.restore()
        record_path(state).unlink(missing_ok=True)
        raise
    return record


def start_real_node(
    supervisor: Supervisor,
    plane: ControlPlane,
    core: client.CoreV1Api,
    state: Path,
    spec: RealNodeSpec,
    images: list[Path],
    record: HostRecord,
    unpack_once: Path | None = None,
) -> RealNode:
    """Starts containerd, the kubelet and kube-proxy on the bridge `prepare_host` made,
    imports `images` (docker-archives, the pause image first) and `unpack_once` (the
    trainer image: from its unpacked root when one is kept, unpacked.py), waits for the
    Node to be Ready with its Services' rules written and advertises its "GPU" slots."""
    began = time.monotonic()
    binaries = NodeBinaries.locate()
    try:
        return _start(
            supervisor, plane, core, state, spec, images, binaries, record, began, unpack_once
        )
    except BaseException:
        # Whatever got started goes before the error; the caller restores the machine.
        for process in reversed(list(supervisor.processes)):
            if process.name.startswith(f"{spec.name}-"):
                supervisor.stop(process, grace_seconds=1)
        raise


def _start(
    supervisor: Supervisor,
    plane: ControlPlane,
    core: client.CoreV1Api,
    state: Path,
    spec: RealNodeSpec,
    images: list[Path],
    binaries: NodeBinaries,
    record: HostRecord,
    began: float,
    unpack_once: Path | None,
) -> RealNode:
    _create_cgroups(cgroup_name(spec))
    cni_conf = write_cni_config(state)
    containerd_config = write_containerd_config(state, binaries, cni_conf)
    kept = unpacked_root(unpack_once, binaries.containerd) if unpack_once else None
    reused = kept is not None and start_from(kept, containerd_root(state))

    # The namespace: its first process does nothing but hold it; when it dies (it dies
    # with unshare, which dies with us) the kernel kills everything inside.
    holder = supervisor.start(
        f"{spec.name}-namespace",
        [
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--propagation=private",
            "--mount-proc",
            "sleep",
            "infinity",
        ],
    )
    wait_until("the node's namespace", lambda: _namespace_pid(holder) > 0, 10, [holder])
    node = RealNode(spec, state, binaries, holder, _namespace_pid(holder))
    path_env = {"PATH": f"{binaries.search_path()}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    containerd = _start_containerd(supervisor, node, containerd_config, path_env)
    if unpack_once is not None and kept is not None and not reused:
        node.load_image(unpack_once)
        node.collect_garbage()
        # Kept with containerd stopped: its databases as they are on disk.
        _stop_containerd(supervisor, containerd)
        keep(containerd_root(state), kept)
        containerd = _start_containerd(supervisor, node, containerd_config, path_env)
    for archive in images:
        node.load_image(archive)
    node.images_seconds = time.monotonic() - began
    node.reused_unpacked = reused

    cert, key = state / "pki" / "kubelet-client.crt", state / "pki" / "kubelet-client.key"
    issue_client_cert(plane.pki, cert, key, f"system:node:{spec.name}", "system:nodes")
    kubeconfig = state / "kubelet.kubeconfig"
    write_kubeconfig(kubeconfig, plane.server, plane.pki, f"system:node:{spec.name}", cert, key)
    labels = {
        REAL_NODE_LABEL: "true",
        GPU_PRODUCT_LABEL: spec.product,
        GPU_COUNT_LABEL: str(spec.gpu_slots),
    }
    kubelet = supervisor.start(
        f"{spec.name}-kubelet",
        [
            *node.enter(),
            str(binaries.kubelet),
            f"--config={write_kubelet_config(state, plane, spec)}",
            f"--kubeconfig={kubeconfig}",
            f"--cert-dir={state / 'kubelet-pki'}",
            f"--root-dir={KUBELET_ROOT}",
            f"--hostname-override={spec.name}",
            f"--node-ip={NODE_IP}",
            f"--node-labels={','.join(f'{k}={v}' for k, v in labels.items())}",
            "--v=1",
        ],
        env=path_env,
    )
    wait_until(
        f"real node {spec.name} Ready",
        lambda: _node_ready(core, spec.name),
        120,
        [kubelet, containerd, holder],
        interval=0.5,
    )
    # Extended resources are advertised through the node status (what a device plugin
    # would report); the kubelet keeps them across its own status updates.
    core.patch_node_status(spec.name, {"status": {"capacity": {GPU_RESOURCE: str(spec.gpu_slots)}}})
    wait_until(
        f"{GPU_RESOURCE} allocatable on {spec.name}",
        lambda: (
            (core.read_node(spec.name).status.allocatable or {}).get(GPU_RESOURCE)
            == str(spec.gpu_slots)
        ),
        30,
        [kubelet],
    )
    _start_kube_proxy(supervisor, node, plane)
    node.ready_seconds = time.monotonic() - began
    return node


def _start_containerd(
    supervisor: Supervisor, node: RealNode, config: Path, env: dict[str, str]
) -> ManagedProcess:
    containerd = supervisor.start(
        f"{node.spec.name}-containerd",
        [*node.enter(), str(node.binaries.containerd), f"--config={config}"],
        env=env,
    )
    wait_until(
        "containerd's socket",
        lambda: node.socket.is_socket() and node.ctr("version", timeout=10).returncode == 0,
        60,
        [containerd, node.holder],
        interval=0.5,
    )
    return containerd


def _stop_containerd(supervisor: Supervisor, containerd: ManagedProcess) -> None:
    """SIGTERM to containerd itself, inside the namespace (nsenter, its parent, need not
    pass the signal on), then its nsenter; its socket goes with it."""
    children = Path(f"/proc/{containerd.popen.pid}/task/{containerd.popen.pid}/children")
    with contextlib.suppress(OSError):
        for pid in children.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        containerd.popen.wait(timeout=30)
    supervisor.stop(containerd, grace_seconds=5)
    (CONTAINERD_STATE / "containerd.sock").unlink(missing_ok=True)


def _start_kube_proxy(supervisor: Supervisor, node: RealNode, plane: ControlPlane) -> None:
    state = node.state_dir
    cert, key = state / "pki" / "kube-proxy.crt", state / "pki" / "kube-proxy.key"
    issue_client_cert(plane.pki, cert, key, KUBE_PROXY_USER)
    kubeconfig = state / "kube-proxy.kubeconfig"
    write_kubeconfig(kubeconfig, plane.server, plane.pki, KUBE_PROXY_USER, cert, key)
    healthz = free_port()
    config = write_kube_proxy_config(
        state, kubeconfig, node.spec.name, NODE_IP, POD_SUBNET, healthz, free_port()
    )
    process = supervisor.start(
        f"{node.spec.name}-kube-proxy",
        [*node.enter(), str(node.binaries.kube_proxy), f"--config={config}", "--v=1"],
        env={"PATH": str(tool_dir(state))},
    )
    wait_until("kube-proxy's Service rules", lambda: synced(healthz), 60, [process])


def stop_real_node(supervisor: Supervisor, node: RealNode) -> None:
    """Kills everything in the node's namespace (the cluster restores the machine once
    its other servers, which listen on the bridge, are gone too)."""
    # SIGKILL to the namespace's first process: the kernel kills every process in the
    # namespace (kubelet, containerd, shims, containers); nsenter and unshare, outside
    # it, exit with their children.
    with contextlib.suppress(ProcessLookupError):
        os.kill(node.namespace_pid, signal.SIGKILL)
    for process in reversed(list(supervisor.processes)):
        if process.name.startswith(f"{node.spec.name}-"):
            supervisor.stop(process, grace_seconds=5)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and Path(f"/proc/{node.namespace_pid}").exists():
        time.sleep(0.1)
    # The images' snapshots would only hold the disk until the state folder goes (the
    # trainer image's layers stay in its unpacked root, unpacked.py).
    shutil.rmtree(containerd_root(node.state_dir), ignore_errors=True)
