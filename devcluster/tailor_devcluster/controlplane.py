"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler.

All on loopback, except the API server of a cluster with a real node: it listens and
advertises on the node's bridge address, which pods reach (loopback is their own).
"""

import ssl
from dataclasses import dataclass
from pathlib import Path

from tailor_devcluster.binaries import Binaries
from tailor_devcluster.kubeconfig import write_kubeconfig
from tailor_devcluster.pki import ClusterPki, create_pki
from tailor_devcluster.ports import free_port
from tailor_devcluster.processes import Supervisor, answers_ok, wait_until

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "10.0.0.0/24"
# Pods on a node that stops answering are evicted after this many seconds
# (the upstream default is 300): fast enough for tests of node loss.
UNREACHABLE_TOLERATION_SECONDS = 5
# A node whose lease is not renewed for this long is marked unreachable (upstream: 40).
NODE_MONITOR_GRACE_SECONDS = 8


@dataclass(frozen=True)
class ControlPlane:
    server: str
    kubeconfig: Path
    pki: ClusterPki


def _https_ok(url: str, pki: ClusterPki) -> bool:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return answers_ok(url, context)


def _self_signed_ok(url: str) -> bool:
    # kube-controller-manager and kube-scheduler serve health on a self-signed certificate.
    return answers_ok(url, ssl._create_unverified_context())


def start_etcd(supervisor: Supervisor, binaries: Binaries, data_dir: Path) -> str:
    client_port, peer_port = free_port(), free_port()
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    process = supervisor.start(
        "etcd",
        [
            str(binaries.etcd),
            "--name=tailor",
            f"--data-dir={data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=tailor={peer_url}",
            "--listen-metrics-urls=",
            # A throwaway test store: durability costs seconds per test and buys nothing.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )
    wait_until("etcd", lambda: answers_ok(f"{client_url}/health"), 30, [process])
    return client_url


def start_apiserver(
    supervisor: Supervisor,
    binaries: Binaries,
    etcd_url: str,
    state_dir: Path,
    address: str = LOOPBACK,
) -> ControlPlane:
    pki = create_pki(state_dir / "pki", server_ips=(address,))
    port = free_port()
    server = f"https://{address}:{port}"
    # On loopback the `kubernetes` Service cannot have endpoints (nothing in a pod could
    # reach them); elsewhere the API server keeps them, and kube-proxy serves them.
    reconciler = "none" if address == LOOPBACK else "lease"
    process = supervisor.start(
        "kube-apiserver",
        [
            str(binaries.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={address}",
            f"--advertise-address={address}",
            f"--endpoint-reconciler-type={reconciler}",
            f"--secure-port={port}",
            f"--tls-cert-file={pki.server_cert}",
            f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            f"--default-not-ready-toleration-seconds={UNREACHABLE_TOLERATION_SECONDS}",
            f"--default-unreachable-toleration-seconds={UNREACHABLE_TOLERATION_SECONDS}",
            f"--cert-dir={state_dir / 'apiserver-certs'}",
            # For logs and exec on a real node: dial its InternalIP (the bridge address;
            # the hostname does not resolve) as a client the kubelet trusts.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki.admin_cert}",
            f"--kubelet-client-key={pki.admin_key}",
            "--v=1",
        ],
    )
    wait_until("kube-apiserver /readyz", lambda: _https_ok(f"{server}/readyz", pki), 90, [process])
    kubeconfig = state_dir / "kubeconfig"
    write_kubeconfig(kubeconfig, server, pki)
    return ControlPlane(server=server, kubeconfig=kubeconfig, pki=pki)


def start_controllers(
    supervisor: Supervisor,
    binaries: Binaries,
    plane: ControlPlane,
    node_monitor_grace_seconds: int = NODE_MONITOR_GRACE_SECONDS,
) -> None:
    """kube-controller-manager (garbage collector, node lifecycle, ...) and kube-scheduler."""
    cm_port, sched_port = free_port(), free_port()
    manager = supervisor.start(
        "kube-controller-manager",
        [
            str(binaries.kube_controller_manager),
            f"--kubeconfig={plane.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={cm_port}",
            f"--service-account-private-key-file={plane.pki.service_account_key}",
            f"--root-ca-file={plane.pki.ca_cert}",
            f"--cluster-signing-cert-file={plane.pki.ca_cert}",
            f"--cluster-signing-key-file={plane.pki.ca_key}",
            "--use-service-account-credentials=false",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Notice a silent node within seconds rather than the default 50.
            "--node-monitor-period=1s",
            f"--node-monitor-grace-period={node_monitor_grace_seconds}s",
            "--v=1",
        ],
    )
    scheduler = supervisor.start(
        "kube-scheduler",
        [
            str(binaries.kube_scheduler),
            f"--kubeconfig={plane.kubeconfig}",
            f"--authentication-kubeconfig={plane.kubeconfig}",
            f"--authorization-kubeconfig={plane.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={sched_port}",
            "--v=1",
        ],
    )
    wait_until(
        "kube-controller-manager /healthz",
        lambda: _self_signed_ok(f"https://127.0.0.1:{cm_port}/healthz"),
        60,
        [manager],
    )
    wait_until(
        "kube-scheduler /readyz",
        lambda: _self_signed_ok(f"https://127.0.0.1:{sched_port}/readyz"),
        60,
        [scheduler],
    )
