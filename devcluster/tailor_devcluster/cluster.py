"""The local cluster as one object: start it, use it, stop it."""

import os
import shlex
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from kubernetes import client, config

from tailor_devcluster.binaries import Binaries, NodeBinaries
from tailor_devcluster.controlplane import (
    LOOPBACK,
    NODE_MONITOR_GRACE_SECONDS,
    ControlPlane,
    start_apiserver,
    start_controllers,
    start_etcd,
)
from tailor_devcluster.hostchanges import HostRecord
from tailor_devcluster.images import ImageBuilder
from tailor_devcluster.kwok import (
    NODE_LEASE_SECONDS,
    GpuNodeSpec,
    create_gpu_nodes,
    start_kwok,
)
from tailor_devcluster.minio import S3Endpoint, start_minio
from tailor_devcluster.nodeconfig import NODE_IP, RealNodeSpec
from tailor_devcluster.processes import ProcessFailed, Supervisor, wait_until
from tailor_devcluster.prometheus import PrometheusServer, start_prometheus
from tailor_devcluster.realnode import (
    RealNode,
    prepare_host,
    record_path,
    start_real_node,
    stop_real_node,
)

DEFAULT_GPU_PRODUCTS = ("NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3")


@dataclass(frozen=True)
class ClusterSettings:
    state_dir: Path
    gpu_nodes: int = 4
    gpus_per_node: int = 8
    gpu_products: tuple[str, ...] = DEFAULT_GPU_PRODUCTS
    kubernetes: bool = True
    minio: bool = True
    prometheus: bool = True
    # Short by default so tests see a lost node within seconds; hundreds of nodes want
    # the kubelet's upstream 40 s lease and 40 s grace, or lease renewals alone fill the CPU.
    node_lease_seconds: int = NODE_LEASE_SECONDS
    node_monitor_grace_seconds: int = NODE_MONITOR_GRACE_SECONDS
    # Real nodes (containerd, runc and the kubelet on this machine; needs root): 0 or 1.
    real_nodes: int = 0
    real_node_gpu_slots: int = 2
    # Load the trainer image last built (about 6 GB; `tailor-cluster images --trainer`).
    real_node_trainer: bool = False

    def node_specs(self) -> list[GpuNodeSpec]:
        return [
            GpuNodeSpec(
                name=f"gpu-node-{index}",
                product=self.gpu_products[index % len(self.gpu_products)],
                gpus=self.gpus_per_node,
            )
            for index in range(self.gpu_nodes)
        ]


class LocalCluster:
    """kube-apiserver, etcd, controller-manager, scheduler and kwok GPU nodes; MinIO;
    Prometheus. Every process dies with the Python process that started it."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.supervisor = Supervisor(settings.state_dir / "logs")
        self.binaries: Binaries | None = None
        self.plane: ControlPlane | None = None
        self.s3: S3Endpoint | None = None
        self.prometheus: PrometheusServer | None = None
        self.gpu_nodes: list[str] = []
        self.real_nodes: list[RealNode] = []
        # The machine as it was before a real node's bridge, restored at stop.
        self.host_record: HostRecord | None = None
        # What a real node could not put back on the machine at stop (empty: all of it).
        self.host_left: list[str] = []
        self.startup_seconds = 0.0

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> "LocalCluster":
        began = time.monotonic()
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        binaries = self.binaries = Binaries.locate()
        # Every process is started from this thread: a child's PR_SET_PDEATHSIG fires
        # when the *thread* that forked it ends, so no worker threads here.
        try:
            if self.settings.real_nodes > 0:
                self._prepare_real_node_host()
            if self.settings.minio:
                self._start_minio(binaries)
            if self.settings.prometheus:
                self._start_prometheus(binaries)
            if self.settings.kubernetes:
                self._start_kubernetes(binaries)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        for node in self.real_nodes:
            stop_real_node(self.supervisor, node)
        self.real_nodes = []
        self.supervisor.stop_all()
        if self.host_record is not None:
            self.host_left += self.host_record.restore()
            if not self.host_left:
                record_path(self.real_node_state_dir).unlink(missing_ok=True)
            self.host_record = None

    @property
    def host_address(self) -> str:
        """Where the API server and MinIO listen: the real node's bridge, which its pods
        reach (and this machine too), else loopback."""
        return NODE_IP if self.settings.real_nodes > 0 else LOOPBACK

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_minio(self, binaries: Binaries) -> None:
        self.s3 = start_minio(
            self.supervisor, binaries, self.settings.state_dir / "minio", self.host_address
        )

    def _start_prometheus(self, binaries: Binaries) -> None:
        if self.settings.real_nodes:
            # One that can discover the real node's pods through the API server.
            binaries = replace(binaries, prometheus=NodeBinaries.locate().prometheus)
        self.prometheus = start_prometheus(
            self.supervisor, binaries, self.settings.state_dir / "prometheus"
        )

    def _start_kubernetes(self, binaries: Binaries) -> None:
        state = self.settings.state_dir
        etcd_url = start_etcd(self.supervisor, binaries, state / "etcd")
        plane = self.plane = start_apiserver(
            self.supervisor, binaries, etcd_url, state, self.host_address
        )
        start_controllers(
            self.supervisor, binaries, plane, self.settings.node_monitor_grace_seconds
        )
        start_kwok(self.supervisor, binaries, plane, self.settings.node_lease_seconds)
        core = client.CoreV1Api(self.api_client())
        specs = self.settings.node_specs()
        create_gpu_nodes(core, specs)
        self.gpu_nodes = [spec.name for spec in specs]
        wait_until(
            f"{len(specs)} kwok GPU nodes Ready",
            lambda: self._nodes_ready(core),
            60,
            self.supervisor.processes,
        )
        if self.settings.real_nodes > 0:
            self._start_real_nodes(core, plane)
        # Pods cannot be created in a namespace before its default ServiceAccount exists.
        wait_until(
            "default ServiceAccount",
            lambda: _has_default_account(core, "default"),
            60,
            self.supervisor.processes,
        )

    @property
    def real_node_state_dir(self) -> Path:
        """A real node's containerd, kubelet and CNI state, and its record of the machine."""
        return self.settings.state_dir / "realnode"

    def _prepare_real_node_host(self) -> None:
        if self.settings.real_nodes != 1:
            raise ProcessFailed("one real node at most for now (they would share the bridge)")
        self.host_record = prepare_host(self.real_node_state_dir, self._real_node_spec())

    def _real_node_spec(self) -> RealNodeSpec:
        return RealNodeSpec(gpu_slots=self.settings.real_node_gpu_slots)

    def _start_real_nodes(self, core: client.CoreV1Api, plane: ControlPlane) -> None:
        assert self.host_record is not None
        builder = ImageBuilder()
        images = [builder.pause_image().archive, builder.operator_image().archive]
        trainer = None
        if self.settings.real_node_trainer:
            trainer = builder.newest_trainer_image()
            if trainer is None:
                raise ProcessFailed(
                    "no trainer image: build it with `tailor-cluster images --trainer`"
                )
        node = start_real_node(
            self.supervisor,
            plane,
            core,
            self.real_node_state_dir,
            self._real_node_spec(),
            images,
            self.host_record,
            unpack_once=trainer.archive if trainer else None,
        )
        self.real_nodes.append(node)

    def _nodes_ready(self, core: client.CoreV1Api) -> bool:
        ready = 0
        for node in core.list_node(label_selector="type=kwok").items:
            for condition in node.status.conditions or []:
                if condition.type == "Ready" and condition.status == "True":
                    ready += 1
        return ready >= len(self.gpu_nodes)

    # -- use ---------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        if self.plane is None:
            raise ProcessFailed("this cluster was started without Kubernetes")
        return self.plane.kubeconfig

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def environment(self) -> dict[str, str]:
        """The connection details, as the variables clients read."""
        env: dict[str, str] = {}
        if self.plane is not None:
            env["KUBECONFIG"] = str(self.plane.kubeconfig)
        if self.s3 is not None:
            env.update(self.s3.environment())
        if self.prometheus is not None:
            env["PROMETHEUS_URL"] = self.prometheus.url
        return env

    def write_env_file(self, path: Path) -> None:
        lines = [f"export {key}={shlex.quote(value)}" for key, value in self.environment().items()]
        path.write_text("\n".join(lines) + "\n")

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 60
    ) -> "subprocess.CompletedProcess[str]":
        assert self.binaries is not None
        result = subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            check=False,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        return result

    def create_namespace(self, name: str) -> None:
        """A namespace ready for pods (its default ServiceAccount exists)."""
        core = client.CoreV1Api(self.api_client())
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        wait_until(
            f"default ServiceAccount in {name}",
            lambda: _has_default_account(core, name),
            30,
            self.supervisor.processes,
        )


def _has_default_account(core: client.CoreV1Api, namespace: str) -> bool:
    names = [sa.metadata.name for sa in core.list_namespaced_service_account(namespace).items]
    return "default" in names
