"""A job's outputs are its own, end to end: a TrainingJob deleted and applied again with
the same spec.output is a new job (a new UID), and its validation pod refuses the old
job's outputs before any GPU: exit 78 (INVALID_CONFIG), a message naming the output and
the job that owns it, nothing in MinIO deleted or overwritten, and the job Failed with
reason InvalidSpec.

Every pod runs for real, in a container on the real node. The first job also shows the claim on the
happy path: its validation writes tailor-job.json, its trial checks it and trains.
"""

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from tailor_devcluster.demo.job import GROUP, ONE_TRIAL, PLURAL, VERSION, apply, demo_job
from tailor_devcluster.demo.stack import prepare_namespace
from tailor_devcluster.waiting import eventually
from tests.e2e.checks import ended, read_s3_json, wait_done
from tests.e2e.conftest import Demo

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

NAME = "reused"
BUDGET_GPU_HOURS = "0.15"  # well above validation's estimate for the digits
# A trial just long enough to checkpoint and export: the outputs are what matters here.
TINY = {"max_steps": 5, "eval_every_epochs": 1, "log_every_steps": 1}
JOB_TIMEOUT = 900
MARKER = "tailor-job.json"


@dataclass(frozen=True)
class Reuse:
    namespace: str
    output: str
    first_uid: str
    second_uid: str
    objects_before: dict[str, str]  # key -> ETag, after the first job
    objects_after: dict[str, str]  # ... once the second job's validation ended
    validation: dict[str, Any]  # the second job's first validation attempt
    api: client.CustomObjectsApi


def _objects(demo: Demo, output: str) -> dict[str, str]:
    assert demo.cluster.s3 is not None
    bucket, _, prefix = output.removeprefix("s3://").partition("/")
    pages = demo.cluster.s3.client().get_paginator("list_objects_v2")
    return {
        item["Key"]: item["ETag"]
        for page in pages.paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    }


def _job(api: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = api.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, NAME
    )
    return found


@pytest.fixture(scope="module")
def reuse(demo: Demo) -> Reuse:
    """A job that finished, deleted, then the same manifest applied again."""
    assert demo.cluster.s3 is not None
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    prepare_namespace(demo.cluster, namespace)
    api = client.CustomObjectsApi(demo.cluster.api_client())
    output = f"s3://models/{namespace}/{NAME}/"
    manifest = demo_job(
        demo.cluster.s3.endpoint_url,
        name=NAME,
        budget_gpu_hours=BUDGET_GPU_HOURS,
        hyperparameters=TINY,
        output=output,
        example=ONE_TRIAL,
    )
    apply(demo.cluster, manifest, namespace)
    first = wait_done(demo, namespace, NAME, JOB_TIMEOUT)
    assert first["status"]["phase"] == "Succeeded", json.dumps(first["status"], indent=1)[-3000:]
    first_uid = first["metadata"]["uid"]
    marker = read_s3_json(demo, output + MARKER)
    assert (marker["job"], marker["uid"]) == (f"{namespace}/{NAME}", first_uid)
    before = _objects(demo, output)
    assert f"{namespace}/{NAME}/trials/t0/checkpoints/last.pt" in before

    api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)

    def gone() -> bool:
        try:
            _job(api, namespace)
        except client.ApiException as error:
            return bool(error.status == 404)
        return False

    eventually("the first job deleted", gone, timeout=120, interval=1)
    apply(demo.cluster, manifest, namespace)

    def validation_ended() -> tuple[str, dict[str, Any]] | None:
        job = _job(api, namespace)
        attempts = ((job.get("status") or {}).get("validation") or {}).get("attempts") or []
        if attempts and attempts[0].get("exitCode") is not None:
            return job["metadata"]["uid"], attempts[0]
        return None

    second_uid, validation = eventually(
        "the second job's validation ended", validation_ended, timeout=300, interval=1
    )
    return Reuse(
        namespace=namespace,
        output=output,
        first_uid=first_uid,
        second_uid=second_uid,
        objects_before=before,
        objects_after=_objects(demo, output),
        validation=validation,
        api=api,
    )


def test_validation_refuses_the_output_of_another_job(demo: Demo, reuse: Reuse) -> None:
    assert reuse.second_uid != reuse.first_uid  # same name, same spec: another job
    attempt = reuse.validation
    assert attempt["exitCode"] == 78, attempt  # INVALID_CONFIG
    end = ended(demo, reuse.namespace, attempt["pod"])  # what the kubelet saw
    assert end is not None
    assert end.exit_code == 78, end
    message = attempt["message"]
    assert (
        f"spec.output {reuse.output} belongs to TrainingJob {reuse.namespace}/{NAME} "
        f"(uid {reuse.first_uid})" in message
    ), message
    assert "choose another spec.output, or delete the objects under" in message
    # Nothing deleted or overwritten, the marker included; no trial was started.
    assert reuse.objects_after == reuse.objects_before
    assert not (_job(reuse.api, reuse.namespace).get("status") or {}).get("trials")


def test_the_job_fails_as_an_invalid_spec_without_retrying(demo: Demo, reuse: Reuse) -> None:
    """Exit 78 is never retried: the job is Failed with reason InvalidSpec."""
    job = wait_done(demo, reuse.namespace, NAME, JOB_TIMEOUT)
    status = job["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec"), status
    assert reuse.output in status["message"]
    assert [a["exitCode"] for a in status["validation"]["attempts"]] == [78]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "InvalidSpec")
    assert not status.get("trials")
    assert _objects(demo, reuse.output) == reuse.objects_before
