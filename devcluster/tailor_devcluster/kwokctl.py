"""Drives simulated pods and nodes the way real failures would.

Used by tests to end a pod with a chosen exit code, evict it, or lose its node.
The annotations are read by the stages in kwok/stages.yaml.
"""

from kubernetes import client

from tailor_devcluster.kwok import MANAGED_LABEL

EXIT_CODE = "kwok.tailor.dev/exit-code"
REASON = "kwok.tailor.dev/reason"
MESSAGE = "kwok.tailor.dev/message"
EXIT_AFTER = "kwok.tailor.dev/exit-after"
IMAGE_PULL = "kwok.tailor.dev/image-pull"
START_DELAY = "kwok.tailor.dev/start-delay"


def finish_pod(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    exit_code: int,
    reason: str | None = None,
    message: str | None = None,
    after: str | None = None,
) -> None:
    """The pod's container exits with `exit_code` (0: Succeeded, else Failed), now or
    `after` a Go duration such as "5s"; `message` becomes its termination message."""
    annotations = {EXIT_CODE: str(exit_code)}
    if reason is not None:
        annotations[REASON] = reason
    if message is not None:
        annotations[MESSAGE] = message
    if after is not None:
        annotations[EXIT_AFTER] = after
    core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": annotations}})


def evict_pod(core: client.CoreV1Api, namespace: str, name: str) -> None:
    """Evicts through the Eviction API, as a drain or the autoscaler would: the API
    server marks the pod DisruptionTarget (EvictionByEvictionAPI) and deletes it."""
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
    core.create_namespaced_pod_eviction(name, namespace, eviction)


def stop_node(core: client.CoreV1Api, name: str) -> None:
    """The node stops heartbeating, as if it lost power: the node lifecycle controller
    marks it unreachable and evicts its pods once their toleration runs out."""
    core.patch_node(name, {"metadata": {"labels": {MANAGED_LABEL: "false"}}})


def restart_node(core: client.CoreV1Api, name: str) -> None:
    core.patch_node(name, {"metadata": {"labels": {MANAGED_LABEL: "true"}}})


def delete_node(core: client.CoreV1Api, name: str) -> None:
    """The Node object disappears (a scaled-down cloud node): the pod garbage
    collector deletes its pods after its quarantine (about 40 s upstream)."""
    core.delete_node(name)
