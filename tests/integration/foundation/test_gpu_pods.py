"""Pods that request GPUs meet the real scheduler and kwok's simulated GPU nodes."""

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tailor_contract.nodes import GPU_PRODUCT_LABEL
from tailor_devcluster import kwokctl
from tailor_devcluster.waiting import eventually

pytestmark = pytest.mark.integration


def gpu_pod(name: str, gpus: int = 1, product: str | None = None) -> client.V1Pod:
    selector = {GPU_PRODUCT_LABEL: product} if product else None
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            restart_policy="Never",
            node_selector=selector,
            automount_service_account_token=False,
            containers=[
                client.V1Container(
                    name="trainer",
                    image="example.invalid/trainer:1",
                    resources=client.V1ResourceRequirements(
                        requests={"nvidia.com/gpu": str(gpus)},
                        limits={"nvidia.com/gpu": str(gpus)},
                    ),
                )
            ],
        ),
    )


def read(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod:
    return core.read_namespaced_pod(name, namespace)


def running(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod:
    return eventually(
        f"pod {name} Running",
        lambda: (pod := read(core, namespace, name)).status.phase == "Running" and pod,
    )


def terminated_state(pod: client.V1Pod) -> client.V1ContainerStateTerminated:
    state = pod.status.container_statuses[0].state
    assert state.terminated is not None, f"container not terminated: {state}"
    return state.terminated


def test_gpu_pod_is_scheduled_on_a_gpu_node_and_runs(kube, core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, gpu_pod("one-gpu", product="NVIDIA-H100-80GB-HBM3"))
    pod = running(core_v1, namespace, "one-gpu")
    node = core_v1.read_node(pod.spec.node_name)
    assert pod.spec.node_name in kube.gpu_nodes
    assert node.metadata.labels[GPU_PRODUCT_LABEL] == "NVIDIA-H100-80GB-HBM3"
    assert node.status.allocatable["nvidia.com/gpu"] == "8"
    assert pod.status.container_statuses[0].state.running.started_at is not None


def test_pod_asking_more_gpus_than_any_node_has_stays_pending(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, gpu_pod("too-big", gpus=9))
    event = eventually(
        "FailedScheduling event",
        lambda: next(
            (
                e
                for e in core_v1.list_namespaced_event(namespace).items
                if e.involved_object.name == "too-big" and e.reason == "FailedScheduling"
            ),
            None,
        ),
    )
    assert "nvidia.com/gpu" in event.message
    assert read(core_v1, namespace, "too-big").status.phase == "Pending"


def test_pod_driven_to_succeeded_with_termination_message(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, gpu_pod("ok"))
    running(core_v1, namespace, "ok")
    kwokctl.finish_pod(core_v1, namespace, "ok", 0, message='{"exit": "SUCCESS"}')
    pod = eventually(
        "pod Succeeded",
        lambda: (p := read(core_v1, namespace, "ok")).status.phase == "Succeeded" and p,
    )
    terminated = terminated_state(pod)
    assert terminated.exit_code == 0
    assert terminated.reason == "Completed"
    assert terminated.message == '{"exit": "SUCCESS"}'
    assert terminated.finished_at >= terminated.started_at


@pytest.mark.parametrize(("code", "reason"), [(68, "Error"), (137, "OOMKilled")])
def test_pod_driven_to_failed_with_exit_code_and_reason(core_v1, namespace, code, reason):
    name = f"fails-{code}"
    core_v1.create_namespaced_pod(namespace, gpu_pod(name))
    running(core_v1, namespace, name)
    kwokctl.finish_pod(core_v1, namespace, name, code, reason=reason)
    pod = eventually(
        "pod Failed", lambda: (p := read(core_v1, namespace, name)).status.phase == "Failed" and p
    )
    terminated = terminated_state(pod)
    assert (terminated.exit_code, terminated.reason) == (code, reason)


def test_pod_exits_after_a_delay(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, gpu_pod("timed"))
    running(core_v1, namespace, "timed")
    kwokctl.finish_pod(core_v1, namespace, "timed", 0, after="2s")
    assert read(core_v1, namespace, "timed").status.phase == "Running"
    pod = eventually(
        "pod Succeeded",
        lambda: (p := read(core_v1, namespace, "timed")).status.phase == "Succeeded" and p,
    )
    terminated = terminated_state(pod)
    assert (terminated.finished_at - terminated.started_at).total_seconds() >= 2


def test_image_pull_failure_is_reported_as_a_kubelet_would(core_v1, namespace):
    pod = gpu_pod("bad-image")
    pod.metadata.annotations = {kwokctl.IMAGE_PULL: "fail"}
    core_v1.create_namespaced_pod(namespace, pod)
    waiting = eventually(
        "ErrImagePull",
        lambda: (
            (s := read(core_v1, namespace, "bad-image").status.container_statuses)
            and s[0].state.waiting
            and s[0].state.waiting.reason == "ErrImagePull"
            and s[0].state.waiting
        ),
    )
    assert "example.invalid/trainer:1" in waiting.message


def disruption_target(pod: client.V1Pod) -> client.V1PodCondition | None:
    return next((c for c in pod.status.conditions or [] if c.type == "DisruptionTarget"), None)


def watch_until_gone(core: client.CoreV1Api, namespace: str, name: str) -> list[client.V1Pod]:
    """Every version of the pod seen until it is deleted (a watch sees each one)."""
    from kubernetes import watch

    seen: list[client.V1Pod] = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={name}",
        timeout_seconds=60,
    ):
        seen.append(event["object"])
        if event["type"] == "DELETED":
            stream.stop()
    return seen


def test_eviction_marks_disruption_target_and_removes_the_pod(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, gpu_pod("evicted"))
    running(core_v1, namespace, "evicted")
    kwokctl.evict_pod(core_v1, namespace, "evicted")
    versions = watch_until_gone(core_v1, namespace, "evicted")
    marked = [c for p in versions if (c := disruption_target(p)) is not None]
    assert marked, "no version of the evicted pod carried DisruptionTarget"
    assert marked[0].reason == "EvictionByEvictionAPI"
    last = versions[-1]
    assert last.status.phase == "Failed"
    assert terminated_state(last).exit_code == 143
    with pytest.raises(ApiException) as gone:
        read(core_v1, namespace, "evicted")
    assert gone.value.status == 404


@pytest.mark.slow
def test_pod_is_lost_with_its_node(kube, core_v1, namespace):
    node = kube.gpu_nodes[-1]
    pod = gpu_pod("on-doomed-node")
    pod.spec.node_name = node  # pinned, as the test needs this node in particular
    core_v1.create_namespaced_pod(namespace, pod)
    running(core_v1, namespace, "on-doomed-node")
    kwokctl.stop_node(core_v1, node)
    try:
        # No kubelet is left to confirm the end, so the pod stays Terminating, marked as
        # disrupted: what the operator must see to retry without charging.
        lost = eventually(
            "pod marked DisruptionTarget by the taint manager",
            lambda: (
                (p := read(core_v1, namespace, "on-doomed-node")).metadata.deletion_timestamp
                and disruption_target(p)
            ),
            timeout=60,
        )
        assert lost is not None
        assert lost.reason == "DeletionByTaintManager"
        node_status = core_v1.read_node(node)
        taints = {t.key for t in node_status.spec.taints or []}
        assert "node.kubernetes.io/unreachable" in taints
        ready = next(c for c in node_status.status.conditions if c.type == "Ready")
        assert ready.status == "Unknown"
    finally:
        kwokctl.restart_node(core_v1, node)
        eventually(
            "node Ready again",
            lambda: any(
                c.type == "Ready" and c.status == "True"
                for c in core_v1.read_node(node).status.conditions
            ),
        )


@pytest.mark.slow
def test_pods_of_a_deleted_node_are_garbage_collected(core_v1, namespace):
    from tailor_devcluster.kwok import GpuNodeSpec, create_gpu_nodes

    node = f"gpu-node-scaled-down-{namespace[-6:]}"
    create_gpu_nodes(core_v1, [GpuNodeSpec(name=node)])
    pod = gpu_pod("orphan")
    pod.spec.node_name = node
    core_v1.create_namespaced_pod(namespace, pod)
    running(core_v1, namespace, "orphan")
    kwokctl.delete_node(core_v1, node)
    # The pod garbage collector waits 40 s for a vanished node to come back, and
    # looks every 20 s.
    eventually(
        "orphaned pod deleted",
        lambda: is_gone(core_v1, namespace, "orphan"),
        timeout=120,
        interval=1,
    )


def is_gone(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        read(core, namespace, name)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False
