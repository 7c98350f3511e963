"""What every end-to-end job is checked against: the node agent's own measurements of
each pod's process, the outputs in MinIO, and the ledger."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tailor_contract.nodes import CPU_SLOT_PRODUCT
from tailor_devcluster.demo.job import agent_log, summary, watch
from tailor_devcluster.demo.stack import CPU_SLOT_FACTOR
from tests.e2e.conftest import Demo

log = logging.getLogger(__name__)


def attempts(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for t in job["status"].get("trials", []) for a in t.get("attempts", [])]


def run_record(demo: Demo, namespace: str, pod: str) -> dict[str, Any]:
    """What the node agent measured of the pod's process (monotonic clock)."""
    (record,) = (demo.cluster.agent_state_dir / "pods").glob(f"{namespace}_{pod}_*/run.json")
    return json.loads(record.read_text())  # type: ignore[no-any-return]


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
    read_log = agent_log(demo.cluster.agent_state_dir)
    job = watch(api, namespace, name, read_log, log.info, timeout, 3.0)
    for line in summary(job):
        log.info(line)
    return job


def assert_charges_are_run_times_times_factor(
    demo: Demo, namespace: str, job: dict[str, Any]
) -> float:
    """Each charged line is the process's run time x GPUs x factor; returns the total."""
    total = 0.0
    for attempt in attempts(job):
        assert attempt["gpuProduct"] == CPU_SLOT_PRODUCT
        assert attempt["calibrationFactor"] == CPU_SLOT_FACTOR
        ran = run_record(demo, namespace, attempt["pod"])["run_seconds"]
        expected = ran * attempt["gpus"] * CPU_SLOT_FACTOR
        # Pod timestamps are whole seconds: one second of the process is the most lost.
        assert abs(attempt["gpuSeconds"] - expected) <= 1.0 * CPU_SLOT_FACTOR + 0.01, attempt
        if attempt["billing"] == "Charged":
            # The ledger's rule: the run, never more than the attempt's allowance (a slot
            # slowed by other work can run past it before the operator's backstop stops it).
            owed = min(attempt["gpuSeconds"], attempt["allowanceGpuSeconds"])
            assert attempt["chargedGpuSeconds"] == pytest.approx(owed, abs=0.001), attempt
        total += attempt["chargedGpuSeconds"]
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
