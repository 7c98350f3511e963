"""kube-proxy on the real node: Service cluster IPs, as real clusters serve them.

In-cluster clients (the operator's kopf, the kubernetes client) find the API server
through the `kubernetes` Service: the kubelet gives every container
KUBERNETES_SERVICE_HOST=10.0.0.1, and kube-proxy turns that address into the API
server's endpoint (the bridge address) with nftables DNAT. Its `nftables` mode keeps
every rule in two tables of its own (`ip kube-proxy`, `ip6 kube-proxy`), which the
host record removes at stop like the kubelet's.

What it must not change on a shared machine: the conntrack sysctls (every value 0
leaves them as they are) and the kernel's modules (its PATH holds `nft` alone, so
its clean-up of the other modes finds no `modprobe`, `iptables` or `ipset` to run).
"""

import json
import os
import shutil
from pathlib import Path

from tailor_devcluster.processes import answers_ok

KUBE_PROXY_USER = "system:kube-proxy"  # bound to system:node-proxier by default RBAC


def write_kube_proxy_config(
    state: Path,
    kubeconfig: Path,
    node_name: str,
    node_ip: str,
    pod_subnet: str,
    healthz_port: int,
    metrics_port: int,
) -> Path:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "bindAddress": node_ip,
        "clusterCIDR": pod_subnet,
        "detectLocalMode": "ClusterCIDR",
        # NodePorts on the node's own address only, never the machine's others.
        "nodePortAddresses": [f"{node_ip}/32"],
        # Its usual ports (10256, 10249) may be taken on a shared machine.
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    path = state / "kube-proxy.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def tool_dir(state: Path) -> Path:
    """A PATH for kube-proxy holding `nft` and nothing else."""
    nft = shutil.which("nft")
    if nft is None:
        raise FileNotFoundError("nft is missing: apt-get install nftables")
    folder = state / "kube-proxy-bin"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "nft"
    if not link.is_symlink():
        os.symlink(nft, link)
    return folder


def synced(healthz_port: int) -> bool:
    """kube-proxy's /healthz answers 200 once it has written the Services' rules."""
    return answers_ok(f"http://127.0.0.1:{healthz_port}/healthz")
