"""kube-controller-manager's garbage collector removes what an owner leaves behind."""

import pytest
from kubernetes import client

from tailor_devcluster.waiting import eventually

from .test_gpu_pods import gpu_pod, is_gone

pytestmark = pytest.mark.integration


def test_owned_pod_is_collected_when_its_owner_is_deleted(core_v1, namespace):
    owner = core_v1.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    pod = gpu_pod("owned")
    pod.metadata.owner_references = [
        client.V1OwnerReference(
            api_version="v1",
            kind="ConfigMap",
            name="owner",
            uid=owner.metadata.uid,
            controller=True,
            block_owner_deletion=True,
        )
    ]
    core_v1.create_namespaced_pod(namespace, pod)
    bystander = core_v1.create_namespaced_pod(namespace, gpu_pod("not-owned"))
    core_v1.delete_namespaced_config_map("owner", namespace)
    eventually("owned pod collected", lambda: is_gone(core_v1, namespace, "owned"), timeout=60)
    assert (
        core_v1.read_namespaced_pod("not-owned", namespace).metadata.uid == bystander.metadata.uid
    )
