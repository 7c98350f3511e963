"""What only a real node can answer: the operator image's user and read-only root, a
kernel OOM kill and how the ledger classifies it, `kubectl logs` and `exec`, and a pod
reaching the API server (through the `kubernetes` Service) and MinIO."""

import time
from typing import Any

import pytest
from kubernetes import client

from tailor_contract.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE
from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.images import OPERATOR_IMAGE
from tailor_operator.core.ledger import CHARGED, classify
from tailor_operator.core.observe import parse_pod
from tailor_operator.core.status import Outcome

from .conftest import REAL_NODE

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.real_node]

RESTRICTED = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(name: str, script: str, memory: str = "256Mi", restricted: bool = True) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": OPERATOR_IMAGE,
        "imagePullPolicy": "Never",  # imported into containerd; nothing can be pulled here
        "command": ["python3", "-c", script],
        "resources": {"limits": {"cpu": "500m", "memory": memory}},
    }
    if restricted:
        container["securityContext"] = RESTRICTED
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": REAL_NODE},
            # As the chart and the operator's pods say it. Left to the image's USER
            # 65532:65532, the group would be 0: the kubelet passes only the image's uid
            # on; and containerd refuses a runAsGroup without a runAsUser.
            "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [container],
        },
    }


def wait_for_phase(
    core: client.CoreV1Api, namespace: str, name: str, phases: set[str], timeout: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    raw: dict[str, Any] = {}
    while time.monotonic() < deadline:
        raw = core.api_client.sanitize_for_serialization(core.read_namespaced_pod(name, namespace))
        if raw.get("status", {}).get("phase") in phases:
            return raw
        time.sleep(0.5)
    raise AssertionError(f"pod {name} not in {phases} after {timeout}s: {raw.get('status')}")


def test_the_node_registers_with_its_gpu_slots_and_product(real_core: client.CoreV1Api):
    node = real_core.read_node(REAL_NODE)
    assert node.status.allocatable[GPU_RESOURCE] == "2"
    assert node.metadata.labels[GPU_PRODUCT_LABEL] == "tailor-cpu-slot"
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready
    assert ready[0].status == "True"


def test_the_gpu_slots_are_scheduled_against(real_core: client.CoreV1Api, real_namespace: str):
    one = pod("one-gpu", "print('slot')")
    one["spec"]["containers"][0]["resources"]["limits"][GPU_RESOURCE] = "1"
    three = pod("three-gpus", "print('never')")
    three["spec"]["containers"][0]["resources"]["limits"][GPU_RESOURCE] = "3"
    real_core.create_namespaced_pod(real_namespace, one)
    real_core.create_namespaced_pod(real_namespace, three)
    assert (
        wait_for_phase(real_core, real_namespace, "one-gpu", {"Succeeded", "Failed"})["status"][
            "phase"
        ]
        == "Succeeded"
    )
    deadline = time.monotonic() + 30
    message = ""
    while f"Insufficient {GPU_RESOURCE}" not in message and time.monotonic() < deadline:
        status = real_core.read_namespaced_pod("three-gpus", real_namespace).status
        message = " ".join(c.message or "" for c in status.conditions or [])
        time.sleep(0.5)
    assert f"Insufficient {GPU_RESOURCE}" in message
    assert real_core.read_namespaced_pod("three-gpus", real_namespace).status.phase == "Pending"


def test_the_operator_image_runs_as_its_user_on_a_read_only_root(
    real_cluster: LocalCluster, real_core: client.CoreV1Api, real_namespace: str
):
    script = (
        "import os, tailor_operator\n"
        "print('uid', os.getuid(), 'gid', os.getgid())\n"
        "try:\n"
        "    open('/written', 'w')\n"
        "except OSError as error:\n"
        "    print('root filesystem:', error.strerror)\n"
        "else:\n"
        "    raise SystemExit('the root filesystem is writable')\n"
    )
    real_core.create_namespaced_pod(real_namespace, pod("operator-image", script))
    raw = wait_for_phase(real_core, real_namespace, "operator-image", {"Succeeded", "Failed"})
    log = real_cluster.kubectl("logs", "-n", real_namespace, "operator-image").stdout
    assert raw["status"]["phase"] == "Succeeded", log
    assert "uid 65532 gid 65532" in log
    assert "root filesystem: Read-only file system" in log


def test_a_pod_over_its_memory_limit_is_oom_killed_and_classified_per_spec(
    real_core: client.CoreV1Api, real_namespace: str
):
    # 300 MB touched page by page under a 64 MiB limit: the kernel's memcg OOM killer.
    script = "chunk = bytearray(300 * 1024 * 1024)\nprint('allocated', len(chunk))\n"
    real_core.create_namespaced_pod(real_namespace, pod("over-limit", script, memory="64Mi"))
    raw = wait_for_phase(real_core, real_namespace, "over-limit", {"Succeeded", "Failed"})
    assert raw["status"]["phase"] == "Failed"
    terminated = raw["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")

    # What the operator makes of this very pod status (SPEC, Failures and Charging):
    end = parse_pod(raw).end
    assert end is not None
    # a configuration the system chose: waived and retried ...
    outcome, detail = classify(end, None, None, deleted=False)
    assert outcome == Outcome.OOM_KILLED
    assert outcome not in CHARGED
    assert detail == "exit 137 (OOMKilled)"
    # ... one the user chose: charged, not retried.
    outcome, _ = classify(end, None, None, deleted=False, user_config=True)
    assert outcome == Outcome.OOM_KILLED_USER_CONFIG
    assert outcome in CHARGED


def test_kubectl_logs_and_exec_reach_the_container(
    real_cluster: LocalCluster, real_core: client.CoreV1Api, real_namespace: str
):
    script = (
        "import time\n"
        "for step in range(600):\n"
        "    print('step', step, flush=True)\n"
        "    time.sleep(0.2)\n"
    )
    real_core.create_namespaced_pod(real_namespace, pod("talker", script))
    wait_for_phase(real_core, real_namespace, "talker", {"Running"})
    deadline = time.monotonic() + 30
    logs = ""
    while "step 2" not in logs and time.monotonic() < deadline:
        logs = real_cluster.kubectl("logs", "-n", real_namespace, "talker").stdout
        time.sleep(0.5)
    assert "step 0\nstep 1\nstep 2" in logs

    exec_ = real_cluster.kubectl("exec", "-n", real_namespace, "talker", "--", "id", "-u")
    assert exec_.stdout.strip() == "65532"
    hostname = real_cluster.kubectl("exec", "-n", real_namespace, "talker", "--", "hostname")
    assert hostname.stdout.strip() == "talker"  # the pod's own UTS namespace


POD_NETWORK_SCRIPT = """
import os, boto3
from botocore.config import Config
from kubernetes import client, config
config.load_incluster_config()
print("service", os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
review = client.AuthenticationV1Api().create_self_subject_review(
    {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
)
print("user", review.status.user_info.username)
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
body = s3.get_object(Bucket="pod-network", Key="hello.txt")["Body"].read().decode()
print("object", body)
"""


def test_a_pod_reaches_the_api_server_as_its_service_account_and_minio(
    real_cluster: LocalCluster, real_core: client.CoreV1Api, real_namespace: str
):
    assert real_cluster.s3 is not None
    s3 = real_cluster.s3.client()
    s3.create_bucket(Bucket="pod-network")
    s3.put_object(Bucket="pod-network", Key="hello.txt", Body=b"from the host")
    manifest = pod("pod-network", POD_NETWORK_SCRIPT)
    # The same endpoint URL as this machine's: MinIO listens on the node's bridge.
    manifest["spec"]["containers"][0]["env"] = [
        {"name": name, "value": value} for name, value in real_cluster.s3.environment().items()
    ]
    real_core.create_namespaced_pod(real_namespace, manifest)
    raw = wait_for_phase(real_core, real_namespace, "pod-network", {"Succeeded", "Failed"})
    log = real_cluster.kubectl("logs", "-n", real_namespace, "pod-network").stdout
    assert raw["status"]["phase"] == "Succeeded", log
    # The Service's cluster IP, which only kube-proxy's rules make reachable ...
    assert "service 10.0.0.1 443" in log
    # ... authenticated with the pod's own projected token ...
    assert f"user system:serviceaccount:{real_namespace}:default" in log
    assert "object from the host" in log
