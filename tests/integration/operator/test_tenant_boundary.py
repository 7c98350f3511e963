"""The tenant boundary on the real control plane: with the platform's allow-lists set,
a job outside them stays Pending with reason InvalidSpec and never gets a pod."""

import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.integration.operator.helpers import (
    create_job,
    pods,
    status,
    wait_condition,
    wait_pod,
)
from tests.integration.operator.process import OperatorProcess

pytestmark = pytest.mark.integration

STORE = "http://minio.storage:9000"
BOUNDARY = {
    "TAILOR_ALLOWED_ENDPOINTS": STORE,
    "TAILOR_ALLOWED_PRIORITY_CLASSES": "batch-low",
    "TAILOR_ALLOWED_TOLERATION_KEYS": "nvidia.com/gpu",
}
TRAIN = "s3://datasets/flowers/train.json"


@pytest.fixture(scope="module")
def bounded_operator(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The session's operator, restarted with the allow-lists for this module."""
    operator.stop()
    operator.env.update(BOUNDARY)
    operator.start()
    yield operator
    operator.stop()
    for name in BOUNDARY:
        operator.env.pop(name, None)
    operator.start()


def dataset(endpoint: str) -> dict[str, str]:
    return {"train": TRAIN, "credentialsSecret": "s3-credentials", "endpoint": endpoint}


def assert_no_pod_for(core: client.CoreV1Api, namespace: str, job: str, seconds: float) -> None:
    """No pod and no trial ConfigMap of the job, all along `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        assert pods(core, namespace, job) == [], f"{job} got a pod"
        maps = core.list_namespaced_config_map(namespace, label_selector=f"tailor.dev/job={job}")
        assert maps.items == [], f"{job} got a ConfigMap"
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)


def test_a_job_outside_the_allow_lists_stays_pending_without_a_pod(
    bounded_operator, trainingjobs, core_v1, namespace
):
    create_job(trainingjobs, namespace, "elsewhere", dataset=dataset("http://attacker.example"))
    create_job(
        trainingjobs,
        namespace,
        "critical",
        dataset=dataset(STORE),
        resources={"priorityClassName": "system-node-critical"},
    )
    create_job(trainingjobs, namespace, "inside", dataset=dataset(STORE))
    # The operator does create pods here, for a job within the lists.
    wait_pod(core_v1, namespace, "inside", "validate", 1, running=False)
    for job, words in (
        ("elsewhere", "spec.dataset.endpoint: 'http://attacker.example' is not an endpoint"),
        ("critical", "spec.resources.priorityClassName: 'system-node-critical' is not allowed"),
    ):
        stalled = wait_condition(trainingjobs, namespace, job, "Stalled")
        assert stalled["reason"] == "InvalidSpec"
        assert words in stalled["message"]
        found = status(trainingjobs, namespace, job)
        assert (found["phase"], found["reason"]) == ("Pending", "InvalidSpec")
    assert f"(allowed: {STORE})" in status(trainingjobs, namespace, "elsewhere")["message"]
    assert "(allowed: batch-low)" in status(trainingjobs, namespace, "critical")["message"]
    for job in ("elsewhere", "critical"):
        assert_no_pod_for(core_v1, namespace, job, seconds=3)
    # The user's mistake, the user's fix: with an allowed endpoint, validation starts.
    trainingjobs.patch_namespaced_custom_object(
        "tailor.dev",
        "v1alpha1",
        namespace,
        "trainingjobs",
        "elsewhere",
        {"spec": {"dataset": {"endpoint": STORE}}},
    )
    pod = wait_pod(core_v1, namespace, "elsewhere", "validate", 1, running=False)
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env["AWS_ENDPOINT_URL"] == STORE
