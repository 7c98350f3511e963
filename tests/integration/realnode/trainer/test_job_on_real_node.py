"""Real TrainingJobs on the real node, with nothing simulated: the chart's operator in
a container of the operator image, validation and the trials in containers of the
trainer image (restricted security, a read-only root, real memory limits, the node's
CPU-backed `nvidia.com/gpu` slot), the digits and the models in MinIO. The job of
examples/digits-one-trial.yaml, shortened as tests/e2e/test_demo_job.py shortens it;
then what only a real kubelet and kernel answer: a trainer that outlives its grace
period is SIGKILLed, and a configuration too large for the pod's memory limit is killed
by the kernel's OOM killer, each classified by the operator as SPEC says.

Skipped when no trainer image was built (`tailor-cluster images --trainer`).
"""

import io
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from kubernetes import client

from tailor_contract.nodes import CPU_SLOT_PRODUCT
from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.demo.job import ONE_TRIAL, apply, demo_job
from tailor_devcluster.demo.stack import prepare_namespace, upload_digits
from tailor_devcluster.nodeconfig import REAL_NODE_LABEL
from tailor_devcluster.waiting import eventually
from tailor_trainer import checkpoint
from tailor_trainer.storage import parse_s3
from tests.chart.install import Release, create_restricted_namespace, installed
from tests.integration.operator.conftest import GROUP, PLURAL, VERSION
from tests.integration.realnode.conftest import REAL_NODE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.real_node,
    pytest.mark.timeout(2400),
]

TEAM = "team-digits"
JOB_TIMEOUT = 1200
CHANCE = 0.1  # ten digits
GRACE_SECONDS = 30
PROGRESS_LINE = re.compile(r"epoch [0-9.]+ step (\d+)/\d+ loss")
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
        "terminationGraceSeconds": GRACE_SECONDS,
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
def release(trainer_cluster: LocalCluster) -> Iterator[Release]:
    cluster = trainer_cluster
    create_restricted_namespace(cluster, TEAM)
    prepare_namespace(cluster, TEAM)  # the S3 credentials Secret the pods read
    upload_digits(cluster)  # every job's data
    with installed(cluster, "tailor", "tailor-system", VALUES, cluster.settings.state_dir) as chart:
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


def one_trial_job(
    release: Release, name: str, model: str | None = None, **hyperparameters: Any
) -> dict[str, Any]:
    """examples/digits-one-trial.yaml on the real node, its model and hyperparameters
    changed as given."""
    cluster = release.kube
    assert cluster.s3 is not None
    manifest = demo_job(
        cluster.s3.endpoint_url,  # the bridge address: the pods' and this machine's
        name=name,
        budget_gpu_hours="0.15",
        hyperparameters={"epochs": 3, "eval_every_epochs": 3, "log_every_steps": 5}
        | hyperparameters,
        output=f"s3://models/{TEAM}/{name}/",
        example=ONE_TRIAL,
    )
    manifest["spec"]["resources"]["nodeSelector"] = {REAL_NODE_LABEL: "true"}
    if model:
        manifest["spec"]["search"]["trials"][0]["model"] = model
    apply(cluster, manifest, TEAM)
    return manifest


def running_trial(release: Release, job: str, attempt: int = 1) -> str:
    """The name of the trial's pod once the kubelet runs it."""
    core = client.CoreV1Api(release.kube.api_client())
    selector = f"tailor.dev/job={job},tailor.dev/trial=t0,tailor.dev/attempt={attempt}"

    def running() -> str | None:
        for pod in core.list_namespaced_pod(TEAM, label_selector=selector).items:
            if pod.status.phase == "Running":
                return str(pod.metadata.name)
        return None

    return eventually(f"{job}'s trial running", running, timeout=600, interval=1)


def logged_step(release: Release, pod: str, at_least: int) -> int:
    """`kubectl logs` of the trial, through the API server and the kubelet, until its
    progress lines reach `at_least` steps; the last step logged."""

    def progressed() -> int | None:
        logs = release.kube.kubectl("logs", "-n", TEAM, pod).stdout
        steps = [int(m.group(1)) for m in PROGRESS_LINE.finditer(logs)]
        return steps[-1] if steps and steps[-1] >= at_least else None

    return eventually(f"{pod} logging step {at_least}", progressed, timeout=600, interval=2)


def test_a_training_job_runs_in_containers_on_the_real_node(release: Release) -> None:
    cluster = release.kube
    assert cluster.s3 is not None
    one_trial_job(release, "digits")

    # While it trains: the kubelet gives the trainer the pod's user, not root, and a
    # root filesystem it cannot write (the chart's restricted namespace allows both).
    pod = running_trial(release, "digits")
    assert logged_step(release, pod, 5) >= 5
    probe = (
        "id -u; id -g; touch /opt/tailor/written 2>&1 && echo root writable; "
        "touch /tmp/written && echo tmp ok"
    )
    seen = cluster.kubectl("exec", "-n", TEAM, pod, "--", "sh", "-c", probe, check=False)
    uid, gid, root, tmp = seen.stdout.strip().splitlines()
    assert (uid, gid) == ("65532", "65532")
    assert "Read-only file system" in root
    assert tmp == "tmp ok"  # the emptyDir the trainer writes to

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


def trainer_processes(pod: str) -> list[int]:
    """The host PIDs of the pod's trainer (from this machine's PID namespace, the
    ancestor of the node's and the container's)."""
    marker = f"TAILOR_POD_NAME={pod}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone, or a kernel thread
                continue
    return found


def read_object(release: Release, uri: str) -> bytes | None:
    """An object in MinIO, None while there is none."""
    assert release.kube.s3 is not None
    s3 = release.kube.s3.client()
    where = parse_s3(uri)
    try:
        body: bytes = s3.get_object(Bucket=where.bucket, Key=where.key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return body


def checkpointed_step(release: Release, output: str) -> int | None:
    """The step of the trial's periodic checkpoint in MinIO, if one was written."""
    body = read_object(release, f"{output}trials/t0/{checkpoint.LAST}")
    if body is None:
        return None
    state = torch.load(io.BytesIO(body), map_location="cpu", weights_only=False)
    return int(state["books"]["step"])


def attempts_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    (trial,) = job["status"]["trials"]
    return list(trial["attempts"])


def test_a_trainer_that_outlives_its_grace_period_is_killed_and_resumes_from_its_checkpoint(
    release: Release,
) -> None:
    """A hung trainer (stopped, so SIGTERM cannot reach its handler) is evicted: the
    kubelet waits the pod's grace period and SIGKILLs it. The operator waives the
    attempt (the eviction's DisruptionTarget), and the retry resumes from the last
    periodic checkpoint, the one thing a killed trainer leaves."""
    manifest = one_trial_job(
        release, "hung", epochs=4, eval_every_epochs=4, checkpoint_every_seconds=10
    )
    output = manifest["spec"]["output"]
    pod = running_trial(release, "hung")
    logged_step(release, pod, 5)
    eventually("a periodic checkpoint", lambda: checkpointed_step(release, output), 600, 2)
    pids = trainer_processes(pod)
    assert pids, f"no process of {pod} on this machine"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    step = checkpointed_step(release, output)  # nothing more can be written now
    assert step is not None

    core = client.CoreV1Api(release.kube.api_client())
    evicted = time.monotonic()
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=TEAM))
    core.create_namespaced_pod_eviction(pod, TEAM, eviction)

    job = wait_finished(client.CustomObjectsApi(release.kube.api_client()), "hung")
    status = job["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)[-3000:]
    first, second = attempts_of(job)
    assert first["pod"] == pod
    # Killed by the kubelet after the grace period, not ended by the trainer. In 1 of 2
    # runs on 2026-12-06 the ledger had no exit code: the node's lease was renewed every
    # 10 s against the control plane's 8-s grace, so the node went Unknown between
    # renewals and the operator settled the attempt without waiting for the kubelet
    # (nodeconfig.py now renews every second). Still settled Evicted and waived.
    assert first.get("exitCode", 128 + signal.SIGKILL) == 128 + signal.SIGKILL, first
    assert (first["outcome"], first["billing"], first["chargedGpuSeconds"]) == (
        "Evicted",
        "Waived",
        0,
    )
    assert first["finishedAt"], first
    assert time.monotonic() - evicted >= GRACE_SECONDS
    assert (second["outcome"], second["billing"]) == ("Completed", "Charged")

    results = f"{output}trials/t0/results/"
    assert read_object(release, f"{results}attempt-1.json") is None  # SIGKILL: no result
    body = read_object(release, f"{results}attempt-2.json")
    assert body is not None
    resumed = json.loads(body)["result"]
    assert resumed["resumed_from_step"] == step
    assert resumed["stopped_by"] == "completed"


def test_a_configuration_too_large_for_the_pods_memory_is_oom_killed_and_charged(
    release: Release,
) -> None:
    """The job's own trial (a ResNet-50 at 224 px, 64 images a step) does not fit the
    2 GiB the platform gives a GPU's pod: the kernel kills it, and since the job's spec
    chose that configuration, the attempt is charged, not retried, and the job says
    what to change (SPEC, the ledger and Failures)."""
    one_trial_job(
        release, "toolarge", "resnet50", input_size=224, batch_size=64, max_steps=4, epochs=1
    )

    job = wait_finished(client.CustomObjectsApi(release.kube.api_client()), "toolarge")
    status = job["status"]
    assert status["phase"] == "Failed", json.dumps(status, indent=1)[-3000:]
    assert status.get("reason") == "NoModelExported", json.dumps(status, indent=1)[-3000:]
    (only,) = attempts_of(job)  # not retried
    assert only["exitCode"] == 128 + signal.SIGKILL
    assert (only["outcome"], only["billing"]) == ("OOMKilledUserConfig", "Charged")
    assert only["chargedGpuSeconds"] > 0
    assert "out of memory" in status["message"]
    assert "batch_size" in status["message"]
