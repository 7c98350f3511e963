"""What every end-to-end job is checked against: the kubelet's record of each pod's
container (when it started and finished, how it ended), the outputs in MinIO, and the
ledger."""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tailor_contract.nodes import CPU_SLOT_PRODUCT
from tailor_devcluster.demo.job import kubelet_log, summary, watch
from tailor_devcluster.demo.stack import CPU_SLOT_FACTOR
from tests.e2e.conftest import Demo

log = logging.getLogger(__name__)


def attempts(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for t in job["status"].get("trials", []) for a in t.get("attempts", [])]


@dataclass(frozen=True)
class Ended:
    """How a pod's container ended, as the kubelet reported it."""

    exit_code: int
    run_seconds: float  # finishedAt - startedAt: whole seconds


def ended(demo: Demo, namespace: str, pod: str) -> Ended | None:
    """The kubelet's record of the pod's (one) container, which has terminated; None
    once the pod is gone (evicted or deleted: the API server deletes it when the
    operator has recorded it)."""
    try:
        found = client.CoreV1Api(demo.cluster.api_client()).read_namespaced_pod(pod, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    (container,) = found.status.container_statuses
    end = container.state.terminated
    assert end is not None, container.state
    return Ended(end.exit_code, (end.finished_at - end.started_at).total_seconds())


def read_s3_json(demo: Demo, uri: str) -> dict[str, Any]:
    assert demo.cluster.s3 is not None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = demo.cluster.s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body)  # type: ignore[no-any-return]


def held_out_digits(demo: Demo, folder: Path, count: int) -> tuple[list[str], list[str]]:
    """The first `count` evaluation images as local files, and their true labels."""
    names = demo.dataset.evaluation_files()[:count]
    paths = []
    for name in names:
        path = folder / Path(name).name
        path.write_bytes(demo.dataset.images[name])
        paths.append(str(path))
    return paths, [demo.dataset.labels[name] for name in names]


def wait_done(demo: Demo, namespace: str, name: str, timeout: float) -> dict[str, Any]:
    api = client.CustomObjectsApi(demo.cluster.api_client())
    read_log = kubelet_log(client.CoreV1Api(demo.cluster.api_client()), namespace)
    job = watch(api, namespace, name, read_log, log.info, timeout, 3.0)
    for line in summary(job):
        log.info(line)
    return job


def assert_charges_are_run_times_times_factor(
    demo: Demo, namespace: str, job: dict[str, Any]
) -> float:
    """Each line is the container's run time (the kubelet's record) x GPUs x factor,
    where its pod is still there to read (a pod the operator stopped, or one evicted,
    is deleted once recorded); each charge within its allowance. Returns the total."""
    total = 0.0
    timed = 0
    for attempt in attempts(job):
        assert attempt["gpuProduct"] == CPU_SLOT_PRODUCT
        assert attempt["calibrationFactor"] == CPU_SLOT_FACTOR
        end = ended(demo, namespace, attempt["pod"])
        if end is not None:
            expected = end.run_seconds * attempt["gpus"] * CPU_SLOT_FACTOR
            # The ledger may read the pod's times rather than the container's: both are
            # whole seconds, so one second is the most they can differ by.
            assert abs(attempt["gpuSeconds"] - expected) <= 1.0 * CPU_SLOT_FACTOR + 0.01, attempt
            timed += 1
        if attempt["billing"] == "Charged":
            # The ledger's rule: the run, never more than the attempt's allowance (a slot
            # slowed by other work can run past it before the operator's backstop stops it).
            owed = min(attempt["gpuSeconds"], attempt["allowanceGpuSeconds"])
            assert attempt["chargedGpuSeconds"] == pytest.approx(owed, abs=0.001), attempt
        total += attempt["chargedGpuSeconds"]
    assert timed > 0  # at least the pod that exported is kept
    budget = job["status"]["budget"]
    assert budget["chargedGpuSeconds"] == pytest.approx(total, abs=0.01)
    assert budget["chargedGpuSeconds"] <= budget["limitGpuSeconds"]
    return total


def assert_the_model_is_the_export(demo: Demo, job: dict[str, Any]) -> dict[str, Any]:
    """A Succeeded job's model exists in S3, its card's weights digest is the one in the
    status, and the card's metrics are the status's (measured on those weights)."""
    status = job["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    model = status["model"]
    card = read_s3_json(demo, model["uri"].rstrip("/") + "/model_card.json")
    assert card["files"]["model.safetensors"] == model["digest"]
    assert card["metrics"] == pytest.approx(model["metrics"], abs=1e-6)
    best = next(t for t in status["trials"] if t["name"] == status["bestTrial"]["name"])
    assert (best["exportUri"], best["exportDigest"]) == (model["uri"], model["digest"])
    return card
