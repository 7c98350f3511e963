"""The trainer image (docker/trainer.Dockerfile, built by `tailor-cluster images
--trainer`) on the real node: `tailor-train validate` reads a dataset from MinIO in a
container with the trial pods' security context and a real memory limit, and leaves
its result in the termination message; under too small a limit the kernel kills it.

Skipped when no trainer image was built (it takes minutes and about 6 GB).
"""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tailor_contract import AttemptResult
from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.images import TRAINER_IMAGE
from tailor_trainer.storage import Storage
from tailor_trainer.synthetic import SyntheticSpec, write
from tests.integration.realnode.conftest import REAL_NODE
from tests.integration.realnode.test_real_node import RESTRICTED, wait_for_phase

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.real_node,
    # The package's first test pays for importing some 6 GB into containerd.
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def dataset(trainer_cluster: LocalCluster, monkeypatch_module: pytest.MonkeyPatch) -> str:
    assert trainer_cluster.s3 is not None
    for key, value in trainer_cluster.s3.environment().items():
        monkeypatch_module.setenv(key, value)
    s3 = trainer_cluster.s3.client()
    # The job module, which shares this cluster, may have made it already.
    if "datasets" not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket="datasets")
    return write(Storage(), "s3://datasets/digits", SyntheticSpec(classes=3, images_per_class=4))


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture
def namespace(trainer_cluster: LocalCluster) -> Iterator[str]:
    name = f"trainer-{uuid.uuid4().hex[:8]}"
    trainer_cluster.create_namespace(name)
    yield name
    client.CoreV1Api(trainer_cluster.api_client()).delete_namespace(name)


def validation_pod(cluster: LocalCluster, annotations: str, memory: str) -> dict[str, Any]:
    assert cluster.s3 is not None
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "validate"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": REAL_NODE},
            "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532},
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "trainer",
                    "image": TRAINER_IMAGE,
                    "imagePullPolicy": "Never",
                    "args": ["validate", "--annotations", annotations, "--workers", "2"],
                    "env": [{"name": k, "value": v} for k, v in cluster.s3.environment().items()],
                    "resources": {"limits": {"cpu": "1", "memory": memory}},
                    "securityContext": RESTRICTED,
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def test_validate_reads_the_dataset_from_minio_in_the_trainer_image(
    trainer_cluster: LocalCluster, dataset: str, namespace: str
) -> None:
    core = client.CoreV1Api(trainer_cluster.api_client())
    core.create_namespaced_pod(namespace, validation_pod(trainer_cluster, dataset, "1Gi"))
    raw = wait_for_phase(core, namespace, "validate", {"Succeeded", "Failed"}, timeout=180)
    log = trainer_cluster.kubectl("logs", "-n", namespace, "validate").stdout
    assert raw["status"]["phase"] == "Succeeded", log
    terminated = raw["status"]["containerStatuses"][0]["state"]["terminated"]
    result = AttemptResult.model_validate_json(terminated["message"])
    assert result.exit == "SUCCESS"
    assert result.dataset is not None
    assert (result.dataset.images, result.dataset.classes) == (12, 3)


def test_validate_under_too_small_a_memory_limit_is_killed_by_the_kernel(
    trainer_cluster: LocalCluster, dataset: str, namespace: str
) -> None:
    core = client.CoreV1Api(trainer_cluster.api_client())
    core.create_namespaced_pod(namespace, validation_pod(trainer_cluster, dataset, "40Mi"))
    raw = wait_for_phase(core, namespace, "validate", {"Succeeded", "Failed"}, timeout=180)
    terminated = raw["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")
