"""The real node's configuration files, as containerd, the CNI plugins and the kubelet
read them (no node is started: tests/integration/realnode runs one)."""

import json
import tomllib
from pathlib import Path

from tailor_devcluster.binaries import NodeBinaries
from tailor_devcluster.controlplane import NODE_MONITOR_GRACE_SECONDS, SERVICE_CIDR, ControlPlane
from tailor_devcluster.hostchanges import HostRecord
from tailor_devcluster.images import PAUSE_IMAGE
from tailor_devcluster.kubeproxy import write_kube_proxy_config
from tailor_devcluster.nodeconfig import (
    BRIDGE,
    CONTAINERD_STATE,
    NODE_IP,
    RealNodeSpec,
    write_cni_config,
    write_containerd_config,
    write_kubelet_config,
)
from tailor_devcluster.pki import create_pki


def binaries(tmp_path: Path) -> NodeBinaries:
    return NodeBinaries(
        containerd=tmp_path / "bin" / "containerd",
        ctr=tmp_path / "bin" / "ctr",
        runc=tmp_path / "runc" / "runc",
        cni_dir=tmp_path / "cni",
        kubelet=tmp_path / "bin" / "kubelet",
        kube_proxy=tmp_path / "bin" / "kube-proxy",
        prometheus=tmp_path / "prometheus" / "prometheus",
    )


def test_containerd_config_is_version_4_with_what_this_machine_needs(tmp_path):
    conf_dir = write_cni_config(tmp_path)
    config = tomllib.loads(
        write_containerd_config(tmp_path, binaries(tmp_path), conf_dir).read_text()
    )
    assert config["version"] == 4
    assert config["state"] == str(CONTAINERD_STATE)
    plugins = config["plugins"]
    assert plugins["io.containerd.server.v1.grpc"]["address"] == str(
        CONTAINERD_STATE / "containerd.sock"
    )
    assert plugins["io.containerd.nri.v1.nri"]["disable"] is True
    assert plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == PAUSE_IMAGE
    runtime = plugins["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE here
    assert runtime["cni"] == {"bin_dirs": [str(tmp_path / "cni")], "conf_dir": str(conf_dir)}


def test_cni_bridge_neither_routes_nor_masquerades(tmp_path):
    conflist = json.loads((write_cni_config(tmp_path) / "10-tailor.conflist").read_text())
    bridge, portmap = conflist["plugins"]
    assert bridge["bridge"] == BRIDGE
    assert bridge["isGateway"] is False  # net.ipv4.ip_forward stays as it was
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["dataDir"].startswith(str(tmp_path))
    assert portmap["type"] == "portmap"


def test_pods_route_service_ips_through_the_node_and_nothing_else(tmp_path):
    bridge, _ = json.loads((write_cni_config(tmp_path) / "10-tailor.conflist").read_text())[
        "plugins"
    ]
    # kube-proxy translates the Service range on the node; no default route, so a pod
    # cannot ask this machine to forward anything.
    assert bridge["ipam"]["routes"] == [{"dst": SERVICE_CIDR, "gw": NODE_IP}]


def test_kube_proxy_leaves_the_machines_conntrack_settings_and_ports_alone(tmp_path):
    path = write_kube_proxy_config(
        tmp_path, tmp_path / "kc", "node-x", NODE_IP, "10.244.0.0/24", 4001, 4002
    )
    config = json.loads(path.read_text())
    assert config["mode"] == "nftables"  # two tables of its own, removed at stop
    assert config["hostnameOverride"] == "node-x"
    assert config["clusterCIDR"] == "10.244.0.0/24"
    assert config["nodePortAddresses"] == [f"{NODE_IP}/32"]
    # 0 everywhere: kube-proxy writes none of the machine-wide conntrack sysctls.
    assert config["conntrack"] == {
        "maxPerCore": 0,
        "min": 0,
        "tcpEstablishedTimeout": "0s",
        "tcpCloseWaitTimeout": "0s",
    }
    assert config["healthzBindAddress"] == "127.0.0.1:4001"
    assert config["metricsBindAddress"] == "127.0.0.1:4002"


def test_kubelet_config_runs_on_cgroup_v1_without_touching_the_machines_cgroups(tmp_path):
    pki = create_pki(tmp_path / "pki")
    plane = ControlPlane(server="https://127.0.0.1:1", kubeconfig=tmp_path / "kc", pki=pki)
    config = json.loads(write_kubelet_config(tmp_path, plane, RealNodeSpec()).read_text())
    assert config["failCgroupV1"] is False
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupRoot"] == "/tailor-tailor-node-0"
    assert "kubeletCgroups" not in config
    assert "systemCgroups" not in config
    assert config["address"] == NODE_IP
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authorization"] == {"mode": "Webhook"}
    assert config["imageGCHighThresholdPercent"] == 100  # nothing could be pulled again
    assert config["resolvConf"] == ""
    # The kubelet renews its lease every quarter of its duration: well within the
    # control plane's grace, or the node flaps to Unknown between renewals.
    assert config["nodeLeaseDurationSeconds"] / 4 <= NODE_MONITOR_GRACE_SECONDS / 2


def test_a_host_record_survives_its_file(tmp_path):
    record = HostRecord(
        sysctls={"kernel.panic": "1"},
        existing_paths=["/var/log/pods"],
        iptables={"filter": [":INPUT ACCEPT"]},
        cgroup_name="tailor-x",
        bridge=BRIDGE,
    )
    record.save(tmp_path / "record.json")
    assert HostRecord.load(tmp_path / "record.json") == record
