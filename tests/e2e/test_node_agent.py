"""The node agent against the real control plane: pods bound by the real scheduler run
as processes, with the kubelet's environment, volumes, status and deletion."""

import json
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tailor_contract.nodes import CPU_SLOT_PRODUCT
from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.waiting import eventually

pytestmark = pytest.mark.integration

FINALIZER = "tailor.dev/ledger"
SCRIPT = """
import os, signal, sys, time
if os.environ.get("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("key", os.environ["KEY"], "pod", os.environ["POD"], "node", os.environ["NODE"], flush=True)
print("config", open(sys.argv[1]).read(), flush=True)
open(os.environ["TAILOR_TERMINATION_LOG"], "w").write("reported " + os.environ["POD"])
time.sleep(float(sys.argv[2]))
sys.exit(int(sys.argv[3]))
"""


def pod_manifest(
    name: str, sleep: float = 0, exit_code: int = 0, gpus: int = 1, **extra: Any
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "trainer",
        "image": "registry.invalid/never-pulled:1",
        "command": ["python", "-c", SCRIPT, "/etc/app/settings.txt", "$(SLEEP)", str(exit_code)],
        "env": [
            {"name": "SLEEP", "value": str(sleep)},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "KEY"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            *extra.pop("env", []),
        ],
        "resources": {
            "requests": {"nvidia.com/gpu": str(gpus)},
            "limits": {"nvidia.com/gpu": str(gpus)},
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": True}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": "settings"}}],
        **extra,
    }
    return {"metadata": {"name": name, "finalizers": [FINALIZER]}, "spec": spec}


def create_inputs(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"KEY": "s3cr3t"}}
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"settings.txt": "lr=0.1"}}
    )


def phase(core: client.CoreV1Api, namespace: str, name: str, *wanted: str) -> client.V1Pod:
    def reached() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in wanted else None

    return eventually(f"pod {name} in {wanted}", reached, timeout=60)


def release(core: client.CoreV1Api, namespace: str, name: str) -> None:
    core.patch_namespaced_pod(name, namespace, {"metadata": {"finalizers": None}})


def pod_folder(cluster: LocalCluster, namespace: str, name: str) -> Path:
    (folder,) = (cluster.agent_state_dir / "pods").glob(f"{namespace}_{name}_*")
    return folder


@pytest.fixture
def core(agent_cluster: LocalCluster) -> client.CoreV1Api:
    return client.CoreV1Api(agent_cluster.api_client())


def test_the_node_offers_cpu_slots_and_keeps_its_lease_fresh(agent_cluster, core):
    name = agent_cluster.agent_node
    assert name is not None
    node = core.read_node(name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == CPU_SLOT_PRODUCT
    assert node.status.allocatable["nvidia.com/gpu"] == "2"
    leases = client.CoordinationV1Api(agent_cluster.api_client())
    first = leases.read_namespaced_lease(name, "kube-node-lease").spec.renew_time
    renewed = eventually(
        "a lease renewal",
        lambda: leases.read_namespaced_lease(name, "kube-node-lease").spec.renew_time > first,
        timeout=15,
    )
    assert renewed
    ready = eventually(
        "no not-ready taint",
        lambda: not any("not-ready" in t.key for t in core.read_node(name).spec.taints or []),
        timeout=30,
    )
    assert ready


def test_a_pod_runs_with_its_environment_volumes_and_termination_message(
    agent_cluster, core, agent_namespace
):
    create_inputs(core, agent_namespace)
    core.create_namespaced_pod(agent_namespace, pod_manifest("worker", sleep=1, exit_code=3))
    running = phase(core, agent_namespace, "worker", "Running", "Failed")
    assert running.spec.node_name == agent_cluster.agent_node  # bound by the real scheduler
    done = phase(core, agent_namespace, "worker", "Failed")
    end = done.status.container_statuses[0].state.terminated
    assert (end.exit_code, end.reason) == (3, "Error")
    assert end.message == "reported worker"
    assert end.finished_at >= end.started_at
    folder = pod_folder(agent_cluster, agent_namespace, "worker")
    log = (folder / "container.log").read_text()
    assert f"key s3cr3t pod worker node {agent_cluster.agent_node}" in log
    assert "config lr=0.1" in log  # /etc/app/settings.txt, read from the ConfigMap
    record = json.loads((folder / "run.json").read_text())
    assert record["exit_code"] == 3
    assert record["run_seconds"] >= 1
    release(core, agent_namespace, "worker")


def test_a_missing_secret_holds_the_pod_until_it_exists(core, agent_namespace):
    core.create_namespaced_pod(agent_namespace, pod_manifest("waits"))

    def waiting() -> Any:
        statuses = core.read_namespaced_pod("waits", agent_namespace).status.container_statuses
        return statuses and statuses[0].state.waiting

    state = eventually("CreateContainerConfigError", waiting, timeout=30)
    assert state.reason == "CreateContainerConfigError"
    assert state.message == 'secret "creds" not found'
    create_inputs(core, agent_namespace)
    done = phase(core, agent_namespace, "waits", "Succeeded")
    assert done.status.container_statuses[0].state.terminated.exit_code == 0
    release(core, agent_namespace, "waits")


def test_deletion_sends_sigterm_then_sigkill_after_the_grace_period_and_keeps_finalizers(
    agent_cluster, core, agent_namespace
):
    create_inputs(core, agent_namespace)
    stubborn = pod_manifest(
        "stubborn",
        sleep=300,
        env=[{"name": "IGNORE_TERM", "value": "1"}],
        terminationGracePeriodSeconds=3,
    )
    core.create_namespaced_pod(agent_namespace, stubborn)
    phase(core, agent_namespace, "stubborn", "Running")
    eventually(
        "the process started",
        lambda: (
            "config"
            in (
                pod_folder(agent_cluster, agent_namespace, "stubborn") / "container.log"
            ).read_text()
        ),
        timeout=30,
    )
    deleted_at = time.monotonic()
    core.delete_namespaced_pod("stubborn", agent_namespace)
    done = phase(core, agent_namespace, "stubborn", "Failed")
    waited = time.monotonic() - deleted_at
    end = done.status.container_statuses[0].state.terminated
    assert end.exit_code == 137  # SIGTERM ignored, so SIGKILL
    assert waited >= 3
    record = json.loads(
        (pod_folder(agent_cluster, agent_namespace, "stubborn") / "run.json").read_text()
    )
    assert record["signalled"]

    def confirmed() -> client.V1Pod | None:
        pod = core.read_namespaced_pod("stubborn", agent_namespace)
        return pod if pod.metadata.deletion_grace_period_seconds == 0 else None

    # The agent confirmed the deletion (grace 0), but the finalizer is its owner's to remove.
    held = eventually("deletion confirmed", confirmed, timeout=30)
    assert held.metadata.finalizers == [FINALIZER]
    release(core, agent_namespace, "stubborn")
    eventually(
        "the pod gone",
        lambda: (
            not core.list_namespaced_pod(
                agent_namespace, field_selector="metadata.name=stubborn"
            ).items
        ),
        timeout=30,
    )


def test_a_pod_bound_past_the_nodes_capacity_is_rejected(agent_cluster, core, agent_namespace):
    create_inputs(core, agent_namespace)
    greedy = pod_manifest(
        "greedy", gpus=3, nodeName=agent_cluster.agent_node
    )  # skips the scheduler
    core.create_namespaced_pod(agent_namespace, greedy)
    done = phase(core, agent_namespace, "greedy", "Failed")
    assert done.status.reason == "OutOfnvidia.com/gpu"
    assert "requested: 3, used: 0, capacity: 2" in done.status.message
    release(core, agent_namespace, "greedy")
