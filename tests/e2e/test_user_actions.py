"""What a user did is the user's, end to end with the real trainer (issue 12, holes 2
and 5): a model name timm does not have is refused by the validation pod (exit 78) and
the job fails InvalidSpec naming the field, before any GPU, nothing charged; a trial pod
the user deletes (a plain delete, no DisruptionTarget) is charged for what it ran and
never retried, and a job with nothing exported fails NoModelExported."""

import json
import uuid
from typing import Any

import pytest
from kubernetes import client

from tailor_devcluster.demo.job import GROUP, ONE_TRIAL, PLURAL, VERSION, apply, demo_job
from tailor_devcluster.demo.stack import prepare_namespace
from tailor_devcluster.waiting import eventually
from tests.e2e.checks import attempts, ended, wait_done
from tests.e2e.conftest import Demo

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

JOB_TIMEOUT = 600


def _namespace(demo: Demo) -> str:
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    prepare_namespace(demo.cluster, namespace)
    return namespace


def _manifest(demo: Demo, name: str, namespace: str, **hyperparameters: Any) -> dict[str, Any]:
    assert demo.cluster.s3 is not None
    return demo_job(
        demo.cluster.s3.endpoint_url,
        name=name,
        budget_gpu_hours="0.15",
        hyperparameters=hyperparameters or None,
        output=f"s3://models/{namespace}/{name}/",
        example=ONE_TRIAL,
    )


def test_a_model_timm_does_not_have_fails_the_job_as_invalid_spec(demo: Demo) -> None:
    namespace = _namespace(demo)
    manifest = _manifest(demo, "typo", namespace)
    manifest["spec"]["search"]["trials"][0]["model"] = "resnet10_t"  # timm: resnet10t
    apply(demo.cluster, manifest, namespace)
    job = wait_done(demo, namespace, "typo", JOB_TIMEOUT)
    status = job["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec"), status
    assert "spec.search.trials[0].model: timm has no model named 'resnet10_t'" in status["message"]
    (validation,) = status["validation"]["attempts"]  # never retried
    assert validation["exitCode"] == 78
    end = ended(demo, namespace, validation["pod"])  # what the kubelet saw
    assert end is not None
    assert end.exit_code == 78, end
    assert not status.get("trials")  # no GPU touched
    assert status["budget"]["chargedGpuSeconds"] == 0


def test_a_trial_pod_the_user_deletes_is_charged_and_not_retried(demo: Demo) -> None:
    namespace = _namespace(demo)
    # Long enough to be deleted mid-run; it checkpoints on the SIGTERM the delete sends.
    manifest = _manifest(demo, "deleted", namespace, epochs=200, eval_every_epochs=50)
    apply(demo.cluster, manifest, namespace)
    core = client.CoreV1Api(demo.cluster.api_client())
    api = client.CustomObjectsApi(demo.cluster.api_client())

    def running_trial_pod() -> str | None:
        job = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "deleted")
        for line in attempts(job):
            if line.get("phase") == "Running":
                return str(line["pod"])
        return None

    pod = eventually("the trial's pod running", running_trial_pod, timeout=300, interval=1)
    core.delete_namespaced_pod(pod, namespace)  # what `kubectl delete pod` does
    job = wait_done(demo, namespace, "deleted", JOB_TIMEOUT)
    status = job["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "NoModelExported"), json.dumps(
        status, indent=1
    )[-3000:]
    (line,) = attempts(job)  # never retried
    assert (line["outcome"], line["billing"]) == ("Deleted", "Charged")
    assert line["chargedGpuSeconds"] > 0
    assert status["budget"]["chargedGpuSeconds"] == pytest.approx(line["chargedGpuSeconds"])
    assert "deleted by a person or a controller" in status["message"]
