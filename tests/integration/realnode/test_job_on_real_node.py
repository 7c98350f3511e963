"""A real TrainingJob end to end on the real node, with nothing simulated: the chart's
operator in a container of the operator image, validation and the trial in containers
of the trainer image (restricted security, real memory limits, the node's CPU-backed
`nvidia.com/gpu` slot), the digits and the model in MinIO. The job of
examples/digits-one-trial.yaml, shortened as tests/e2e/test_demo_job.py shortens it.

Skipped when no trainer image was built (`tailor-cluster images --trainer`).
"""

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tailor_devcluster.demo.job import ONE_TRIAL, apply, demo_job
from tailor_devcluster.demo.stack import prepare_namespace, upload_digits
from tailor_devcluster.nodeconfig import CPU_SLOT_PRODUCT, REAL_NODE_LABEL
from tests.chart.install import Release, create_restricted_namespace, installed
from tests.integration.operator.conftest import GROUP, PLURAL, VERSION

from .conftest import REAL_NODE, trainer_node_cluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.real_node,
    pytest.mark.timeout(1500),
]

TEAM = "team-digits"
JOB_TIMEOUT = 1200
CHANCE = 0.1  # ten digits
# The demo's settings (tailor_devcluster.demo.stack.OPERATOR_SETTINGS) as chart values.
VALUES: dict[str, Any] = {
    "replicaCount": 1,
    "peering": {"enabled": False},
    "image": {"pullPolicy": "Never"},  # imported into containerd; nothing can be pulled
    "trainer": {
        "image": {"pullPolicy": "Never"},
        "cpuPerGpu": 1,
        "memoryGiBPerGpu": 2,
        "validationCpu": 0.5,
        "validationMemoryGiB": 1,
        "terminationGraceSeconds": 30,
    },
    "settings": {
        "backoffBaseSeconds": 2,
        "backoffMaxSeconds": 10,
        "allowanceGraceSeconds": 30,
        "resyncSeconds": 10,
        "cacheSeconds": 2,
        "costFixedSeconds": 5,
        "costImagesPerSecond": 8,
        "costFloorSecondsPerImage": 0.0008,
    },
    "calibration": {"factors": {CPU_SLOT_PRODUCT: 0.5}},
}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    with trainer_node_cluster(tmp_path_factory) as cluster:
        create_restricted_namespace(cluster, TEAM)
        prepare_namespace(cluster, TEAM)  # the S3 credentials Secret the pods read
        with installed(
            cluster, "tailor", "tailor-system", VALUES, cluster.settings.state_dir
        ) as chart:
            chart.team = TEAM
            yield chart


def wait_finished(api: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = api.get_namespaced_custom_object(GROUP, VERSION, TEAM, PLURAL, name)
        if (job.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return job
        time.sleep(5)
    raise AssertionError(f"{name} unfinished: {json.dumps(job.get('status'))[-3000:]}")


def test_a_training_job_runs_in_containers_on_the_real_node(release: Release) -> None:
    cluster = release.kube
    assert cluster.s3 is not None
    upload_digits(cluster)
    manifest = demo_job(
        cluster.s3.endpoint_url,  # the bridge address: the pods' and this machine's
        name="digits",
        budget_gpu_hours="0.15",
        hyperparameters={"epochs": 3, "eval_every_epochs": 3, "log_every_steps": 5},
        output=f"s3://models/{TEAM}/digits/",
        example=ONE_TRIAL,
    )
    manifest["spec"]["resources"]["nodeSelector"] = {REAL_NODE_LABEL: "true"}
    apply(cluster, manifest, TEAM)

    job = wait_finished(client.CustomObjectsApi(cluster.api_client()), "digits")
    status = job["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)[-3000:]
    assert status["model"]["metrics"]["top1_accuracy"] > 5 * CHANCE
    # Validation and the trial ran on the real node's slot, and were charged by it.
    (trial,) = status["trials"]
    attempts = status["validation"]["attempts"] + trial["attempts"]
    assert {a.get("node") for a in attempts} == {REAL_NODE}
    assert trial["attempts"][-1]["gpuProduct"] == CPU_SLOT_PRODUCT
    assert 0 < status["budget"]["chargedGpuSeconds"] <= status["budget"]["limitGpuSeconds"]
    model = cluster.s3.client().list_objects_v2(Bucket="models", Prefix=f"{TEAM}/digits/")
    names = [entry["Key"] for entry in model.get("Contents", [])]
    assert any(name.endswith(".onnx") for name in names), names
