"""Creating TrainingJobs and playing the trainer's part through kwok."""

import json
from typing import Any

from kubernetes import client

from tailor_contract import AttemptResult, DatasetFacts
from tailor_devcluster.kwokctl import finish_pod
from tailor_devcluster.waiting import eventually
from tests.integration.operator.conftest import DEFAULT_FACTOR, FACTORS, GROUP, PLURAL, VERSION
from tests.integration.operator.process import FAST

FACTS = DatasetFacts(images=500, classes=5, mean_width=320, mean_height=240, digest="sha256:test")


def spec(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "classification",
        "dataset": {
            "train": "s3://datasets/flowers/train.json",
            "credentialsSecret": "s3-credentials",
        },
        "budget": {"gpuHours": "1"},
        "output": "s3://models/flowers/",
    }
    body.update(overrides)
    return body


def create_job(
    api: client.CustomObjectsApi, namespace: str, name: str, **overrides: Any
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": spec(**overrides),
    }
    return api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)  # type: ignore[no-any-return]


def status(api: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    found = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return found.get("status") or {}


def condition(
    api: client.CustomObjectsApi, namespace: str, name: str, kind: str
) -> dict[str, Any] | None:
    return next(
        (c for c in status(api, namespace, name).get("conditions", []) if c["type"] == kind), None
    )


def wait_condition(
    api, namespace: str, name: str, kind: str, timeout: float = 60
) -> dict[str, Any]:
    def true() -> dict[str, Any] | None:
        found = condition(api, namespace, name, kind)
        return found if found and found["status"] == "True" else None

    return eventually(f"{name} {kind}=True", true, timeout=timeout)


def pods(
    core: client.CoreV1Api, namespace: str, job: str, trial: str | None = None
) -> list[client.V1Pod]:
    selector = f"tailor.dev/job={job}" + (f",tailor.dev/trial={trial}" if trial else "")
    found = core.list_namespaced_pod(namespace, label_selector=selector).items
    return sorted(found, key=lambda p: int(p.metadata.labels["tailor.dev/attempt"]))


def wait_pod(
    core,
    namespace: str,
    job: str,
    trial: str,
    attempt: int,
    running: bool = True,
    timeout: float = 60,
) -> client.V1Pod:
    def ready() -> client.V1Pod | None:
        for pod in pods(core, namespace, job, trial):
            if pod.metadata.labels["tailor.dev/attempt"] != str(attempt):
                continue
            statuses = pod.status.container_statuses or []
            if not running or (statuses and statuses[0].state.running):
                return pod
        return None

    return eventually(
        f"{job} {trial} attempt {attempt}{' running' if running else ''}", ready, timeout=timeout
    )


def pass_validation(core, namespace: str, job: str) -> None:
    pod = wait_pod(core, namespace, job, "validate", 1)
    message = AttemptResult(exit="SUCCESS", dataset=FACTS).to_termination_message()
    finish_pod(core, namespace, pod.metadata.name, 0, message=message)


def trial_result(top1: float, export: bool = True) -> str:
    """What the trainer reports on success: the metrics of the weights it exported."""
    return AttemptResult(
        exit="SUCCESS",
        metrics={"top1_accuracy": top1},
        primary_metric="top1_accuracy",
        export_uri="s3://models/flowers/trials/t0/export" if export else None,
        export_digest=f"sha256:{int(top1 * 1000):064x}" if export else None,
    ).to_termination_message()


def run_seconds(core, namespace: str, name: str) -> float:
    """Container start to termination, as the kubelet (here kwok) reported it."""
    pod = core.read_namespaced_pod(name, namespace)
    terminated = pod.status.container_statuses[0].state.terminated
    return float((terminated.finished_at - terminated.started_at).total_seconds())


def factor_for(core: client.CoreV1Api, node: str) -> float:
    """The calibration factor the test table gives this node's GPU product."""
    product = core.read_node(node).metadata.labels.get("nvidia.com/gpu.product")
    return FACTORS.get(product, DEFAULT_FACTOR)


def expected_charge(core: client.CoreV1Api, namespace: str, name: str, gpus: int = 1) -> float:
    """(finish - start) x GPUs x factor, from the pod and its node."""
    pod = core.read_namespaced_pod(name, namespace)
    return run_seconds(core, namespace, name) * gpus * factor_for(core, pod.spec.node_name)


def assert_ledger_sane(job_status: dict[str, Any]) -> None:
    """The invariants every job keeps, whatever happened to it (docs/operator.md,
    "What Tailor guarantees")."""
    budget = job_status["budget"]
    assert budget["chargedGpuSeconds"] <= budget["limitGpuSeconds"], json.dumps(budget)
    lines = [a for t in job_status.get("trials", []) for a in t.get("attempts", [])]
    charged = sum(a.get("chargedGpuSeconds", 0) for a in lines)
    assert abs(budget["chargedGpuSeconds"] - min(charged, budget["limitGpuSeconds"])) < 0.01
    pods_seen = [a["pod"] for a in lines]
    assert len(pods_seen) == len(set(pods_seen)), "a pod appears twice in the ledger"
    # Waived work is bounded: at most TAILOR_MAX_WAIVED_ATTEMPTS waived attempts, each
    # ran at most its allowance plus the grace period.
    every = lines + job_status.get("validation", {}).get("attempts", [])
    waived = [a for a in every if a.get("billing") == "Waived"]
    assert len(waived) <= int(FAST["TAILOR_MAX_WAIVED_ATTEMPTS"]), json.dumps(waived)
    grace = float(FAST["TAILOR_ALLOWANCE_GRACE_SECONDS"])
    for line in waived:
        ceiling = line["allowanceGpuSeconds"] + grace * line["gpus"] * line.get(
            "calibrationFactor", 0
        )
        assert line.get("gpuSeconds", 0) <= ceiling + 1.0 * line["gpus"], json.dumps(line)
    # A Succeeded job's model is an export a trial's trainer reported writing.
    if job_status.get("phase") == "Succeeded":
        model = job_status["model"]
        exports = {(a.get("exportUri"), a.get("exportDigest")) for a in lines}
        assert (model["uri"], model.get("digest")) in exports, json.dumps(model)
